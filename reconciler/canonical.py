"""The canonical text of a row, in Python: the reference the SQL renderings must equal.

A row is rendered in its *service* form (see :mod:`migration_plans.core.mapping`): the key,
then every mapped field in declaration order, ``|``-separated. NULL is ``~``; text
values carry a length prefix (``5:hello``) so no separator inside a value can make two
different rows render alike. Numbers are rendered without trailing zeros, booleans as
``true``/``false``, timestamps in UTC as ``YYYY-MM-DD HH:MM:SS[.ffffff]`` (PostgreSQL's
own text form, trailing zeros dropped) truncated to the field's precision.

    op = Op(kind=OpKind.CENTS, scale=2)
    render(op, Decimal("79.19"))          # '7919'
    row_text("42", [op], [True], [Decimal("79.19")])   # '42|7919'

On SQLite this module *is* the implementation (registered as SQL functions); on
PostgreSQL :mod:`reconciler.sql` compiles the same rules to SQL, and the tests check
both agree on every op.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

NULL_MARK = "~"
SEPARATOR = "|"


class Category(StrEnum):
    """What a column holds, as far as rendering is concerned."""

    INT = "int"
    DECIMAL = "decimal"
    FLOAT = "float"
    TEXT = "text"
    BOOL = "bool"
    TIMESTAMP = "timestamp"
    DATE = "date"
    OTHER = "other"


class OpKind(StrEnum):
    """How one side renders one column to canonical text."""

    INT = "int"
    DECIMAL = "decimal"
    CENTS = "cents"
    FLOAT = "float"
    TEXT = "text"
    BOOL = "bool"
    ENUM = "enum"
    TIMESTAMP = "timestamp"
    DATE = "date"
    OTHER = "other"
    ENUM_MAP = "enum_map"
    JSON = "json"


@dataclass(frozen=True)
class Op:
    """One column's rendering on one side (``category`` is the column's stored type)."""

    kind: OpKind
    category: Category = Category.OTHER
    scale: int = 0
    true_value: str = ""
    false_value: str = ""
    precision: str = "us"
    timezone: bool = False
    values: tuple[tuple[str, str], ...] = ()
    unknown: str = ""

    @property
    def textual(self) -> bool:
        """Whether the rendered value may contain any character (needs a length prefix)."""
        return self.kind in (OpKind.TEXT, OpKind.ENUM, OpKind.OTHER, OpKind.ENUM_MAP, OpKind.JSON)


def render_decimal(value: Decimal) -> str:
    """``79.190`` -> ``79.19``, ``100.00`` -> ``100``, ``-0.00`` -> ``0`` (as trim_scale)."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def render_float(value: float) -> str:
    """Shortest round-trip text, integral values without ``.0`` (PostgreSQL float8 output)."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = repr(value)
    return {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}.get(text, text)


def to_utc_naive(value: Any) -> datetime:
    """A timestamp (datetime or ISO text; naive means UTC) as a naive UTC datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise TypeError(f"{value!r} is not a timestamp")
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def render_timestamp(value: Any, precision: str) -> str:
    """UTC, truncated to ``precision``, in PostgreSQL's text form."""
    moment = to_utc_naive(value)
    micro = moment.microsecond
    if precision == "s":
        micro = 0
    elif precision == "ms":
        micro = micro // 1000 * 1000
    text = moment.replace(microsecond=0).isoformat(sep=" ")
    if micro:
        text += f".{micro:06d}".rstrip("0")
    return text


def jsonb_text(value: Any) -> str:
    """A decoded JSON value as PostgreSQL renders ``jsonb`` as text.

    Object keys ordered by byte length, then bytes (duplicates: the last wins, as when
    decoded); ``", "`` and ``": "`` between items; numbers as ``numeric`` prints them
    (no exponent, the written scale kept: ``1.50`` stays ``1.50``, ``1e2`` is ``100``).
    """
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        number = value if isinstance(value, Decimal) else Decimal(repr(value))
        if number.is_zero():
            number = number.copy_abs()
        return format(number, "f")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(jsonb_text(item) for item in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(str(k).encode("utf-8")), str(k).encode("utf-8")))
        items = (f"{json.dumps(str(k), ensure_ascii=False)}: {jsonb_text(value[k])}" for k in keys)
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"{value!r} is not a JSON value")


def parse_json(value: Any) -> Any:
    """A stored JSON value decoded (text parsed with exact decimals; decoded values as they are)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        return json.loads(value, parse_float=Decimal)
    return value


def render_enum_map(op: Op, value: Any) -> str:
    """The mapped value, or the op's unknown-value marker and the value's text."""
    text = "true" if value is True else "false" if value is False else str(value)
    for stored, mapped in op.values:
        if stored == text:
            return mapped
    return op.unknown + text


def render(op: Op, value: Any) -> str | None:
    """The canonical text of one value (None for NULL).

    A value Python cannot read as its type (SQLite's ``'infinity'`` in a timestamp
    column) renders as its stored text, as PostgreSQL renders its own ``infinity``.
    """
    if value is None:
        return None
    try:
        return _render(op, value)
    except (ValueError, TypeError, ArithmeticError):
        return str(value)


def _render(op: Op, value: Any) -> str:
    kind = op.kind
    if kind is OpKind.INT:
        return str(int(value))
    if kind is OpKind.DECIMAL:
        return render_decimal(Decimal(str(value)))
    if kind is OpKind.CENTS:
        return render_decimal(Decimal(str(value)) * (10**op.scale))
    if kind is OpKind.FLOAT:
        return render_float(float(value))
    if kind is OpKind.BOOL:
        return "true" if value else "false"
    if kind is OpKind.ENUM:
        return op.true_value if value else op.false_value
    if kind is OpKind.TIMESTAMP:
        return render_timestamp(value, op.precision)
    if kind is OpKind.DATE:
        return value.isoformat() if isinstance(value, date) else str(value)[:10]
    if kind is OpKind.ENUM_MAP:
        return render_enum_map(op, value)
    if kind is OpKind.JSON:
        return jsonb_text(parse_json(value))
    return str(value)


def render_part(text: str | None, quoted: bool) -> str:
    """One field of the row text: NULL mark, or the value (length-prefixed if ``quoted``)."""
    if text is None:
        return NULL_MARK
    return f"{len(text)}:{text}" if quoted else text


def row_text(
    key: Any,
    ops: Sequence[Op],
    quoted: Sequence[bool],
    values: Sequence[Any],
    *,
    key_quoted: bool = False,
) -> str:
    """The canonical text of a whole row: key (length-prefixed if text), then each field."""
    parts = [render_part(str(key), key_quoted)]
    for op, is_quoted, value in zip(ops, quoted, values, strict=True):
        parts.append(render_part(render(op, value), is_quoted))
    return SEPARATOR.join(parts)


def key_bucket(key: Any, buckets: int) -> int:
    """Bucket of a text key: 60 bits of md5 of its text, modulo ``buckets`` (as in SQL)."""
    return int(hashlib.md5(str(key).encode("utf-8")).hexdigest()[:15], 16) % buckets


def md5_hash64(text: str) -> int:
    """First 8 bytes of md5 as a signed 64-bit integer (same as the PostgreSQL md5 mode)."""
    return int.from_bytes(hashlib.md5(text.encode("utf-8")).digest()[:8], "big", signed=True)
