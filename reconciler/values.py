"""Values a database holds that Python cannot: fetched and compared in their text form.

PostgreSQL accepts timestamps and dates Python's ``datetime`` cannot hold
(``infinity``, ``-infinity``, years after 9999 or before 1) and numbers whose Python
value never equals itself (``NaN``) or breaks the mapping's arithmetic
(``Infinity``); SQLite stores any text in a timestamp column. Such a value is
fetched as :class:`DbText`, the database's own rendering of it (on PostgreSQL the
canonical text the checksum hashed), so one odd row is a divergence like any
other, or a match when both sides hold the same value, and never an error that
hides the rest of its table.

    columns = fetch_columns(side, table, "postgresql")   # value + text twin per column
    row = decode_row(side, values, dialect)               # odd values as DbText
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from migration_plans.core.sqlnames import quote_ident
from reconciler.canonical import Category
from reconciler.schema import KEY_LABEL, SideSchema
from reconciler.sql import pg_value

_MOMENTS = (Category.TIMESTAMP, Category.DATE)
FRAGILE = (*_MOMENTS, Category.DECIMAL, Category.FLOAT)
"""Column categories whose values may be beyond Python (or unequal to themselves)."""


class DbText(str):
    """A value in its database's own text form (``infinity``, ``NaN``, ``10000-01-01``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"DbText({str.__repr__(self)})"


def _ordinary_sql(category: Category, column: str) -> str:
    """PostgreSQL condition: the value of ``column`` converts to an ordinary Python value."""
    if category in _MOMENTS:
        return f"({column} >= '0001-01-01' AND {column} < '10000-01-01')"
    return f"{column}::text NOT IN ('NaN', 'Infinity', '-Infinity')"


def _fragile(side: SideSchema) -> list[int]:
    """Positions (in key, *columns) of the columns that may hold odd values."""
    return [i for i, op in enumerate(side.ops) if i and op.category in FRAGILE]


def fetch_columns(side: SideSchema, dialect: str) -> list[Any]:
    """What to select for the key text, mapped columns and key columns of ``side``.

    In the order of :attr:`SideSchema.fetch_names`. PostgreSQL: each fragile column
    as its value when ordinary (else NULL), and a text twin at the end holding its
    canonical text when it is not. SQLite: fragile columns raw (SQLite hands back
    text), checked one value at a time by :func:`decode_row`.
    """
    fragile = _fragile(side)
    types = side.types or (None,) * len(side.ops)
    qualifier = quote_ident(side.table)
    selected: list[Any] = [sa.literal_column(side.key_sql, sa.Text()).label(KEY_LABEL)]
    twins: list[Any] = []
    for i, (name, sql) in enumerate(zip(side.columns, side.fetch_sql, strict=True), start=1):
        column_type = types[i]
        if i not in fragile or dialect not in ("sqlite", "postgresql"):
            selected.append(sa.literal_column(sql, column_type).label(name))
        elif dialect == "sqlite":
            selected.append(sa.literal_column(sql, sa.types.NullType()).label(name))
        else:
            op = side.ops[i]
            ordinary = _ordinary_sql(op.category, sql)
            value = f"CASE WHEN {ordinary} THEN {sql} END"
            selected.append(sa.literal_column(value, column_type).label(name))
            text = f"CASE WHEN NOT {ordinary} THEN {pg_value(op, sql)} END"
            twins.append(sa.literal_column(text, sa.Text()).label(f"{name} (text)"))
    if not side.id_map_pair:
        selected += [
            sa.literal_column(f"{qualifier}.{quote_ident(name)}").label(name)
            for name in side.key_columns
        ]
    return [*selected, *twins]


def _odd_number(value: Any) -> DbText | None:
    if isinstance(value, float) and not math.isfinite(value):
        return DbText({"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[repr(value)])
    if isinstance(value, Decimal) and not value.is_finite():
        return DbText("NaN" if value.is_nan() else str(value))
    return None


def _readable(raw: Any, category: Category) -> Any:
    """A raw SQLite value, or its text when Python cannot read it as ``category``."""
    if not isinstance(raw, str):
        return raw
    try:
        if category is Category.TIMESTAMP:
            datetime.fromisoformat(raw)
        elif category is Category.DATE:
            date.fromisoformat(raw[:10])
        else:
            Decimal(raw)
    except (ValueError, ArithmeticError):
        return DbText(raw)
    return raw


def decode_row(side: SideSchema, values: Sequence[Any], dialect: Dialect) -> dict[str, Any]:
    """A fetched row by column name (the key text under ``KEY_LABEL``), odd values as :class:`DbText`."""
    names = side.fetch_names
    row = dict(zip(names, values[: len(names)], strict=True))
    fragile = _fragile(side)
    if dialect.name == "postgresql":
        for i, text in zip(fragile, values[len(names) :], strict=True):
            if text is not None:
                row[names[i]] = DbText(text)
    elif dialect.name == "sqlite":
        for i in fragile:
            row[names[i]] = _readable(row[names[i]], side.ops[i].category)
    for i in fragile:
        odd = _odd_number(row[names[i]])
        if odd is not None:
            row[names[i]] = odd
    return row
