"""The API edge: the monolith's JSON contract, produced from service-form rows via the mapping.

Services keep their cleaner model inside and speak the monolith's language at the
edge: a service row goes through ``TableMapping.to_monolith`` and is rendered the
way DRF renders it (decimals as strings with their places, datetimes as UTC ISO 8601
with microseconds and ``Z``, foreign keys under the relation's name).

    legacy_json(products_pair, row, renames={"category_id": "category"})
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from migration_plans.core.mapping import TableMapping

DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def render_value(value: Any) -> Any:
    """One value as DRF renders it."""
    if isinstance(value, datetime):
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return moment.strftime(DATETIME_FORMAT)
    if isinstance(value, Decimal):
        return str(value)
    return value


def legacy_json(
    pair: TableMapping, row: Mapping[str, Any], *, renames: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A service-form row as the monolith's JSON (monolith names, ``renames`` applied)."""
    monolith_row = pair.to_monolith(row)
    names = renames or {}
    return {
        names.get(column, column): render_value(value) for column, value in monolith_row.items()
    }


def service_values(pair: TableMapping, monolith_values: Mapping[str, Any]) -> dict[str, Any]:
    """Monolith-form column values (some of them) converted to service columns and values."""
    converted: dict[str, Any] = {}
    for field in pair.fields:
        if field.monolith in monolith_values:
            converted[field.service] = field.to_service(monolith_values[field.monolith])
    if pair.key.monolith in monolith_values:
        converted[pair.key.service] = monolith_values[pair.key.monolith]
    return converted


def service_column(pair: TableMapping, monolith_column: str) -> str:
    """The service column that ``monolith_column`` maps to."""
    if monolith_column == pair.key.monolith:
        return pair.key.service
    for field in pair.fields:
        if field.monolith == monolith_column:
            return field.service
    raise KeyError(f"{pair.name}: no mapped monolith column {monolith_column!r}")
