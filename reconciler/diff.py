"""Field-by-field diff of fetched rows through the mapping, and root-cause hints.

Both rows are brought to the canonical (service) form with the mapping's own
Python conversions, then compared with deepdiff; each key is classified as
missing in the service, missing in the monolith, or differing (with its fields).

    divergence = compare_rows(mapping, 42, monolith_row, service_row)
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from deepdiff import DeepDiff
from pydantic import BaseModel, ConfigDict

from migration_plans.core.mapping import TableMapping
from reconciler.values import DbText

Key = int | str
ERROR_FIELD = "__error__"
"""The field a divergence names when a row has no canonical form (the mapping's error)."""


class DivergenceKind(StrEnum):
    MISSING_IN_SERVICE = "missing_in_service"
    MISSING_IN_MONOLITH = "missing_in_monolith"
    DIFFERING = "differing"


class FieldDiff(BaseModel):
    """One field that differs, in canonical (service) form on both sides."""

    model_config = ConfigDict(frozen=True)

    field: str
    monolith: Any = None
    service: Any = None


class Divergence(BaseModel):
    """One key whose rows disagree."""

    model_config = ConfigDict(frozen=True)

    key: Key
    kind: DivergenceKind
    fields: tuple[FieldDiff, ...] = ()
    in_flight: bool = False
    reason: str | None = None  # e.g. the dead-lettered event that left the key divergent


def jsonable(value: Any) -> Any:
    """A JSON-friendly rendering of a canonical value (decimals and timestamps as text)."""
    if isinstance(value, DbText):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def _canonical(mapping: TableMapping, row: Mapping[str, Any], side: str) -> dict[str, Any]:
    """The row's canonical form; a value in its database's text form stays that text."""
    odd = {name for name, value in row.items() if isinstance(value, DbText)}
    plain = {name: None if name in odd else value for name, value in row.items()}
    try:
        if side == "monolith":
            canonical = mapping.canonical_from_monolith(plain)
        else:
            canonical = mapping.canonical_from_service(plain)
    except (ValueError, TypeError, ArithmeticError) as exc:  # MappingValueError and the like
        return {ERROR_FIELD: f"{side}: {exc}"}
    for field in mapping.fields:
        column = getattr(field, side)
        if column in odd:
            canonical[field.service] = row[column]
    for copy in mapping.copies:  # fetched in canonical form (reconciler.segment)
        canonical[copy.service] = row.get(copy.service)
    return canonical


_PATH = re.compile(r"^root\['([^']*)'\]")


def _changed_fields(diff: DeepDiff) -> list[str]:
    fields: list[str] = []
    for change in ("values_changed", "type_changes", "dictionary_item_added"):
        for path in diff.get(change, {}):
            match = _PATH.match(str(path))
            if match and match.group(1) not in fields:
                fields.append(match.group(1))
    for path in diff.get("dictionary_item_removed", {}):
        match = _PATH.match(str(path))
        if match and match.group(1) not in fields:
            fields.append(match.group(1))
    return fields


def compare_rows(
    mapping: TableMapping,
    key: Key,
    monolith_row: Mapping[str, Any] | None,
    service_row: Mapping[str, Any] | None,
) -> Divergence | None:
    """Classify one key; None when both rows agree through the mapping."""
    if monolith_row is None and service_row is None:
        return None
    if service_row is None:
        return Divergence(key=key, kind=DivergenceKind.MISSING_IN_SERVICE)
    if monolith_row is None:
        return Divergence(key=key, kind=DivergenceKind.MISSING_IN_MONOLITH)
    left = _canonical(mapping, monolith_row, "monolith")
    right = _canonical(mapping, service_row, "service")
    if left == right:  # the common case, far cheaper than a DeepDiff
        return None
    if ERROR_FIELD in left or ERROR_FIELD in right:
        # No canonical form (a value the mapping cannot convert): report why, not fields.
        error = FieldDiff(
            field=ERROR_FIELD, monolith=left.get(ERROR_FIELD), service=right.get(ERROR_FIELD)
        )
        return Divergence(key=key, kind=DivergenceKind.DIFFERING, fields=(error,))
    diff = DeepDiff(left, right, verbose_level=2)
    if not diff:
        return None
    fields = tuple(
        FieldDiff(field=name, monolith=jsonable(left.get(name)), service=jsonable(right.get(name)))
        for name in _changed_fields(diff)
    )
    return Divergence(key=key, kind=DivergenceKind.DIFFERING, fields=fields)


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return None
    return number if number.is_finite() else None


def _moment(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return value if isinstance(value, datetime) else None


def _field_pattern(name: str, pairs: list[tuple[Any, Any]]) -> str | None:
    numbers = [(_number(a), _number(b)) for a, b in pairs]
    if all(a is not None and b is not None for a, b in numbers):
        ratios = {b / a for a, b in numbers if a}  # type: ignore[operator]
        if len(ratios) == 1 and all(a for a, _ in numbers):
            ratio = ratios.pop()
            if ratio != 1:
                return (
                    f"every differing {name!r} is the monolith's value x{ratio.normalize():f} "
                    f"in the service ({len(pairs)} rows): a mapping or scale bug, not lost data"
                )
        offsets = {b - a for a, b in numbers}  # type: ignore[operator]
        if len(offsets) == 1:
            return (
                f"every differing {name!r} is off by {offsets.pop().normalize():+f} "
                f"({len(pairs)} rows): a systematic shift, check the conversion"
            )
    moments = [(_moment(a), _moment(b)) for a, b in pairs]
    if all(a is not None and b is not None for a, b in moments):
        shifts: set[timedelta] = {b - a for a, b in moments}  # type: ignore[operator]
        if len(shifts) == 1:
            shift = shifts.pop().total_seconds()
            return (
                f"every differing {name!r} is shifted by {shift:+g}s ({len(pairs)} rows): "
                "a time zone or precision bug, not lost data"
            )
    return None


def root_cause_hints(
    divergences: Iterable[Divergence], monolith_rows: int, service_rows: int, min_rows: int = 3
) -> list[str]:
    """Patterns that point at a cause rather than at individual rows."""
    divergences = list(divergences)
    hints: list[str] = []
    kinds = Counter(d.kind for d in divergences)
    if service_rows == 0 and monolith_rows > 0:
        hints.append("the service table is empty: the backfill has not run (or wrote elsewhere)")
    elif monolith_rows == 0 and service_rows > 0:
        hints.append("the monolith table is empty: wrong database, or reverse sync never ran")
    pairs: dict[str, list[tuple[Any, Any]]] = {}
    for divergence in divergences:
        for field in divergence.fields:
            pairs.setdefault(field.field, []).append((field.monolith, field.service))
    differing = kinds[DivergenceKind.DIFFERING]
    for name, values in sorted(pairs.items()):
        if len(values) < min_rows:
            continue
        pattern = _field_pattern(name, values)
        if pattern:
            hints.append(pattern)
        elif len(values) == differing and len(pairs) == 1:
            hints.append(f"only {name!r} differs ({len(values)} rows)")
    return hints
