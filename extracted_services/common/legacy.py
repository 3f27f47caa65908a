"""The API edge: the monolith's JSON contract, produced from service-form rows via the mapping.

Services keep their cleaner model inside and speak the monolith's language at the
edge: a service row goes through the mapping's fields and is rendered the way DRF
renders it (decimals as strings with their places, datetimes as UTC ISO 8601 with
microseconds and ``Z``, UUIDs as text, foreign keys under the relation's name).

Key columns are copied by position (a composite key's columns each under its monolith
name). On an ``id_map`` pair the service's own key is shown under the monolith's key
column: the monolith never held it, the service's clients address rows by it. A field
that copies another pair's column (``copy_of``) is the service's own: not shown.

    legacy_json(products_pair, row, renames={"category_id": "category"})
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from extracted_services.common.store import monolith_fields
from migration_plans.core.mapping import TableMapping

DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def render_value(value: Any) -> Any:
    """One value as DRF renders it."""
    if isinstance(value, datetime):
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return moment.strftime(DATETIME_FORMAT)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, UUID):
        return str(value)
    return value


def monolith_row(pair: TableMapping, row: Mapping[str, Any]) -> dict[str, Any]:
    """A service-form row in monolith columns and values (the key copied by position)."""
    key = pair.key
    converted: dict[str, Any] = {
        monolith: row[service]
        for monolith, service in zip(key.monolith_columns, key.service_columns, strict=True)
    }
    for field in monolith_fields(pair):
        converted[field.monolith] = field.to_monolith(row.get(field.service))
    return converted


def legacy_json(
    pair: TableMapping, row: Mapping[str, Any], *, renames: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A service-form row as the monolith's JSON (monolith names, ``renames`` applied)."""
    names = renames or {}
    return {
        names.get(column, column): render_value(value)
        for column, value in monolith_row(pair, row).items()
    }


def service_values(pair: TableMapping, monolith_values: Mapping[str, Any]) -> dict[str, Any]:
    """Monolith-form column values (some of them) converted to service columns and values.

    Key columns are copied by position, except an ``id_map`` pair's (the service makes
    its own keys: a monolith key is not one of them).
    """
    converted: dict[str, Any] = {}
    for field in monolith_fields(pair):
        if field.monolith in monolith_values:
            converted[field.service] = field.to_service(monolith_values[field.monolith])
    if not pair.key.id_map:
        for monolith, service in zip(
            pair.key.monolith_columns, pair.key.service_columns, strict=True
        ):
            if monolith in monolith_values:
                converted[service] = monolith_values[monolith]
    return converted


def service_column(pair: TableMapping, monolith_column: str) -> str:
    """The service column that ``monolith_column`` maps to."""
    key = pair.key
    if monolith_column in key.monolith_columns:
        return key.service_columns[list(key.monolith_columns).index(monolith_column)]
    for field in monolith_fields(pair):
        if field.monolith == monolith_column:
            return str(field.service)
    raise KeyError(f"{pair.name}: no mapped monolith column {monolith_column!r}")
