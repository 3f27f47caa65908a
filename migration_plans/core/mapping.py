"""The field mapping between a monolith table and a service table: ONE declaration per pair.

The services read the monolith's rows through it (shared phase), the dual-write
relay converts events with it, and the reconciler compiles it to SQL to hash
rows on both sides. It lives in the context's plan file under ``tables:``::

    tables:
      - name: products
        monolith_table: catalog_product
        service_table: products
        key: {monolith: id, service: id}
        fields:
          - {monolith: name, service: title}
          - {monolith: price, service: price_cents, transform: decimal_cents, scale: 2}
          - {monolith: is_active, service: status, transform: bool_enum,
             true_value: active, false_value: archived}

Every transform works in both directions and round-trips exactly; the canonical
form of a value (what the reconciler hashes and diffs) is its *service* form.

    mapping = load_context_mapping(Path("migration_plans/templates/catalog.yaml"))
    service_row = mapping.table("products").to_service(monolith_row)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from migration_plans.core.keys import CompositeKeyError, KeyMapping, KeyType, Side
from migration_plans.core.references import Reference
from migration_plans.core.sqlnames import SqlName, SqlText
from migration_plans.core.yamlfile import SourceDocument

Row = dict[str, Any]

__all__ = [
    "BoolEnumField",
    "ColumnPair",
    "CompositeKeyError",
    "ContextMapping",
    "DecimalCentsField",
    "FieldMapping",
    "IdentityField",
    "KeyMapping",
    "KeyType",
    "MappingValueError",
    "Row",
    "Side",
    "TableMapping",
    "TimestampField",
    "TransformKind",
    "load_context_mapping",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class MappingValueError(ValueError):
    """A value cannot be converted by a field's transform (names the table, field and value)."""


class TransformKind(StrEnum):
    IDENTITY = "identity"
    DECIMAL_CENTS = "decimal_cents"
    BOOL_ENUM = "bool_enum"
    TIMESTAMP = "timestamp"


ColumnPair = KeyMapping
"""The key of a pair (the name it had when keys were one integer column)."""


class IdentityField(BaseModel):
    """Same value on both sides, possibly under another column name."""

    model_config = _FROZEN

    monolith: SqlName
    service: SqlName
    transform: Literal["identity"] = "identity"
    nullable: bool = True

    def to_service(self, value: Any) -> Any:
        return value

    def to_monolith(self, value: Any) -> Any:
        return value


class DecimalCentsField(BaseModel):
    """A decimal with ``scale`` places in the monolith, an integer of minor units in the service."""

    model_config = _FROZEN

    monolith: SqlName
    service: SqlName
    transform: Literal["decimal_cents"]
    scale: int = Field(default=2, ge=0, le=9)
    nullable: bool = False

    def to_service(self, value: Any) -> int | None:
        if value is None:
            return None
        try:
            scaled = Decimal(str(value)) * (10**self.scale)
        except InvalidOperation as exc:
            raise MappingValueError(f"{self.monolith}: {value!r} is not a decimal") from exc
        if scaled != scaled.to_integral_value():
            raise MappingValueError(
                f"{self.monolith}: {value!r} has more than {self.scale} decimal places"
            )
        return int(scaled)

    def to_monolith(self, value: Any) -> Decimal | None:
        if value is None:
            return None
        return (Decimal(int(value)) / (10**self.scale)).quantize(Decimal(1).scaleb(-self.scale))


class BoolEnumField(BaseModel):
    """A boolean in the monolith, a two-valued enum string in the service."""

    model_config = _FROZEN

    monolith: SqlName
    service: SqlName
    transform: Literal["bool_enum"]
    true_value: SqlText
    false_value: SqlText
    nullable: bool = False

    @model_validator(mode="after")
    def _invertible(self) -> BoolEnumField:
        if self.true_value == self.false_value:
            raise ValueError(
                f"not invertible: true_value and false_value are both {self.true_value!r}"
            )
        return self

    def to_service(self, value: Any) -> str | None:
        if value is None:
            return None
        return self.true_value if bool(value) else self.false_value

    def to_monolith(self, value: Any) -> bool | None:
        if value is None:
            return None
        if value == self.true_value:
            return True
        if value == self.false_value:
            return False
        raise MappingValueError(
            f"{self.service}: {value!r} is neither {self.true_value!r} nor {self.false_value!r}"
        )


class TimestampField(BaseModel):
    """A timestamp compared in UTC, truncated to ``precision`` (``us``, ``ms`` or ``s``)."""

    model_config = _FROZEN

    monolith: SqlName
    service: SqlName
    transform: Literal["timestamp"]
    precision: Literal["s", "ms", "us"] = "us"
    nullable: bool = True

    def normalise(self, value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime):
            raise MappingValueError(f"{self.monolith}: {value!r} is not a timestamp")
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if self.precision == "s":
            return moment.replace(microsecond=0)
        if self.precision == "ms":
            return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        return moment

    def to_service(self, value: Any) -> datetime | None:
        return self.normalise(value)

    def to_monolith(self, value: Any) -> datetime | None:
        return self.normalise(value)


def _transform_of(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("transform", TransformKind.IDENTITY.value))
    return str(getattr(value, "transform", TransformKind.IDENTITY.value))


FieldMapping = Annotated[
    Annotated[IdentityField, Tag("identity")]
    | Annotated[DecimalCentsField, Tag("decimal_cents")]
    | Annotated[BoolEnumField, Tag("bool_enum")]
    | Annotated[TimestampField, Tag("timestamp")],
    Discriminator(_transform_of),
]


class TableMapping(BaseModel):
    """How one monolith table corresponds to one service table."""

    model_config = _FROZEN

    name: str = Field(description="Name of the pair, used on the command line (--table).")
    monolith_table: SqlName
    service_table: SqlName
    key: KeyMapping
    fields: tuple[FieldMapping, ...]
    references: tuple[Reference, ...] = Field(
        default=(),
        description="Columns holding another pair's key (migration_plans.core.references).",
    )

    @model_validator(mode="after")
    def _references_name_mapped_columns(self) -> TableMapping:
        mapped = {field.service: field for field in self.fields}
        for reference in self.references:
            field = mapped.get(reference.column)
            if field is None:
                raise ValueError(
                    f"references: {reference.column!r} is not a mapped service column of "
                    f"{self.name!r} (mapped: {', '.join(sorted(mapped))})"
                )
            if field.transform != TransformKind.IDENTITY:
                raise ValueError(
                    f"references: {reference.column!r} holds a key, which is never "
                    f"transformed; its field has transform {field.transform!r}"
                )
        return self

    @model_validator(mode="after")
    def _columns_are_unique(self) -> TableMapping:
        for side in ("monolith", "service"):
            seen: set[str] = set(self.key.columns(side))
            for field in self.fields:
                column = getattr(field, side)
                if column in seen:
                    raise ValueError(
                        f"not invertible: {side} column {column!r} is mapped more than once"
                    )
                seen.add(column)
        return self

    @property
    def monolith_columns(self) -> list[str]:
        """Key columns first, then mapped columns, in declaration order."""
        return [*self.key.monolith_columns, *(field.monolith for field in self.fields)]

    @property
    def service_columns(self) -> list[str]:
        """Key columns first, then mapped columns, in declaration order."""
        return [*self.key.service_columns, *(field.service for field in self.fields)]

    def monolith_key(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        """The key values of a monolith row (one per key column, in order)."""
        return tuple(row[column] for column in self.key.monolith_columns)

    def service_key(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        """The key values of a service row (one per key column, in order)."""
        return tuple(row[column] for column in self.key.service_columns)

    def to_service(self, row: Mapping[str, Any]) -> Row:
        """Convert a monolith row (keyed by monolith column) into a service row.

        The key columns are copied, except on an ``id_map`` pair: there the service's
        key is another value, which the caller translates through the id map
        (:mod:`migration_plans.core.idmap`); the result then holds the fields only.
        """
        converted: Row = {}
        if not self.key.id_map:
            converted.update(zip(self.key.service_columns, self.monolith_key(row), strict=True))
        converted.update(self.convert_fields_only(row, to="service"))
        return converted

    def to_monolith(self, row: Mapping[str, Any]) -> Row:
        """Convert a service row (keyed by service column) into a monolith row.

        Like :meth:`to_service`, an ``id_map`` pair's key is left to the caller.
        """
        converted: Row = {}
        if not self.key.id_map:
            converted.update(zip(self.key.monolith_columns, self.service_key(row), strict=True))
        converted.update(self.convert_fields_only(row, to="monolith"))
        return converted

    def convert_fields_only(self, row: Mapping[str, Any], *, to: Side) -> Row:
        """Convert the mapped (non-key) columns of ``row`` to side ``to``; keys left out."""
        converted: Row = {}
        if to == "service":
            for field in self.fields:
                converted[field.service] = field.to_service(row.get(field.monolith))
        else:
            for field in self.fields:
                converted[field.monolith] = field.to_monolith(row.get(field.service))
        return converted

    def canonical_from_monolith(self, row: Mapping[str, Any]) -> Row:
        """The canonical (service-form) rendering of a monolith row."""
        return self.to_service(row)

    def canonical_from_service(self, row: Mapping[str, Any]) -> Row:
        """The canonical rendering of a service row (normalises timestamps)."""
        return self.to_service(self.to_monolith(row))


class ContextMapping(BaseModel):
    """Every table pair of one bounded context."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    context: str
    tables: tuple[TableMapping, ...]

    @model_validator(mode="after")
    def _names_are_unique(self) -> ContextMapping:
        names = [table.name for table in self.tables]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate table pair names: {', '.join(duplicates)}")
        return self

    def table(self, name: str) -> TableMapping:
        """The pair called ``name``; :class:`KeyError` listing the known names otherwise."""
        for table in self.tables:
            if table.name == name:
                return table
        known = ", ".join(table.name for table in self.tables)
        raise KeyError(f"context {self.context!r} has no table {name!r} (known: {known})")


def load_context_mapping(path: Path) -> ContextMapping:
    """Load the ``tables:`` section of a plan file; :class:`ConfigError` names file:line:field."""
    return SourceDocument.read(path).validate(ContextMapping)
