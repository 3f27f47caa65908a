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

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    model_validator,
)

from migration_plans.core.keys import CompositeKeyError, KeyMapping, KeyType, Side
from migration_plans.core.references import Reference, ReferenceProblem
from migration_plans.core.sqlnames import SqlName, SqlText
from migration_plans.core.transforms import Transform, TransformLookupError, transform_named
from migration_plans.core.yamlfile import SourceDocument

Row = dict[str, Any]

__all__ = [
    "BoolEnumField",
    "ColumnPair",
    "CompositeKeyError",
    "ContextMapping",
    "CopyField",
    "CopySource",
    "CustomField",
    "DecimalCentsField",
    "EnumMapField",
    "FieldMapping",
    "IdentityField",
    "JsonField",
    "KeyMapping",
    "KeyType",
    "MappingValueError",
    "Row",
    "Side",
    "TableMapping",
    "TimestampField",
    "TransformKind",
    "canonical_json",
    "load_context_mapping",
    "split_table_problems",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")

EmptyStringPolicy = Literal["keep", "null"]
_INTEGER_TEXT = re.compile(r"-?[0-9]+")


class MappingValueError(ValueError):
    """A value cannot be converted by a field's transform (names the table, field and value)."""


class TransformKind(StrEnum):
    IDENTITY = "identity"
    DECIMAL_CENTS = "decimal_cents"
    BOOL_ENUM = "bool_enum"
    TIMESTAMP = "timestamp"
    ENUM_MAP = "enum_map"
    JSON = "json"
    CUSTOM = "custom"


ColumnPair = KeyMapping
"""The key of a pair (the name it had when keys were one integer column)."""


class IdentityField(BaseModel):
    """Same value on both sides, possibly under another column name.

    ``empty_string: "null"`` declares that the monolith's empty string is the
    service's NULL (Django's ``blank=True`` text columns store ``''`` where a service
    stores NULL): ``''`` (and NULL) become NULL in the service, and the service's
    NULL becomes ``''`` in the monolith. ``"keep"`` (the default) copies both as they are.
    """

    model_config = _FROZEN

    monolith: SqlName
    service: SqlName
    transform: Literal["identity"] = "identity"
    nullable: bool = True
    empty_string: EmptyStringPolicy = "keep"

    def to_service(self, value: Any) -> Any:
        if self.empty_string == "null" and value == "":
            return None
        return value

    def to_monolith(self, value: Any) -> Any:
        if self.empty_string == "null" and value is None:
            return ""
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


class EnumMapField(BaseModel):
    """An enum with any number of values, spelled one way in the monolith and another in the service.

    ``values`` maps each monolith value to its service value and must be injective.
    ``monolith_type: integer`` says the monolith stores integers (``{1: open}``).
    """

    model_config = _FROZEN

    monolith: SqlName
    service: SqlName
    transform: Literal["enum_map"]
    values: dict[SqlText, SqlText] = Field(min_length=1)
    monolith_type: Literal["text", "integer"] = "text"
    nullable: bool = True

    @model_validator(mode="after")
    def _invertible(self) -> EnumMapField:
        seen: dict[str, str] = {}
        for monolith_value, service_value in self.values.items():
            if service_value in seen:
                raise ValueError(
                    f"not invertible: {seen[service_value]!r} and {monolith_value!r} both "
                    f"map to {service_value!r}"
                )
            seen[service_value] = monolith_value
        if self.monolith_type == "integer":
            bad = [value for value in self.values if not _INTEGER_TEXT.fullmatch(value)]
            if bad:
                raise ValueError(f"monolith_type integer: {bad[0]!r} is not an integer")
        return self

    def _monolith_text(self, value: Any) -> str:
        if self.monolith_type == "integer" and not isinstance(value, bool):
            try:
                return str(int(value))
            except (TypeError, ValueError):
                return str(value)
        return str(value)

    def to_service(self, value: Any) -> str | None:
        if value is None:
            return None
        found = self.values.get(self._monolith_text(value))
        if found is None:
            raise MappingValueError(
                f"{self.monolith}: {value!r} is not a monolith value of the enum_map "
                f"(known: {', '.join(self.values)})"
            )
        return found

    def to_monolith(self, value: Any) -> str | int | None:
        if value is None:
            return None
        for monolith_value, service_value in self.values.items():
            if service_value == value:
                return int(monolith_value) if self.monolith_type == "integer" else monolith_value
        raise MappingValueError(
            f"{self.service}: {value!r} is not a service value of the enum_map "
            f"(known: {', '.join(self.values.values())})"
        )


def canonical_json(value: Any) -> str:
    """JSON text with sorted keys and compact separators (how JSON values are compared)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class JsonField(BaseModel):
    """A JSON document, compared by value whether a side stores json, jsonb or text.

    ``monolith_storage`` / ``service_storage``: ``json`` (the driver hands back the
    decoded value: json/jsonb columns) or ``text`` (a text column holding JSON: the
    conversions parse and write canonical text, :func:`canonical_json`).
    """

    model_config = _FROZEN

    monolith: SqlName
    service: SqlName
    transform: Literal["json"]
    monolith_storage: Literal["json", "text"] = "json"
    service_storage: Literal["json", "text"] = "json"
    nullable: bool = True

    def _decode(self, value: Any, storage: str, column: str) -> Any:
        if storage != "text":
            return value
        if not isinstance(value, str | bytes):
            raise MappingValueError(f"{column}: {value!r} is not JSON text")
        try:
            return json.loads(value)
        except ValueError as exc:
            raise MappingValueError(f"{column}: {value!r} is not valid JSON: {exc}") from exc

    def _encode(self, value: Any, storage: str) -> Any:
        return canonical_json(value) if storage == "text" else value

    def to_service(self, value: Any) -> Any:
        if value is None:
            return None
        decoded = self._decode(value, self.monolith_storage, self.monolith)
        return self._encode(decoded, self.service_storage)

    def to_monolith(self, value: Any) -> Any:
        if value is None:
            return None
        decoded = self._decode(value, self.service_storage, self.service)
        return self._encode(decoded, self.monolith_storage)


class CustomField(BaseModel):
    """A user transform found by entry point (:mod:`migration_plans.core.transforms`).

    ``name`` is resolved and every sample checked for a round trip when the plan
    loads; NULL stays NULL without calling the transform.
    """

    model_config = _FROZEN

    monolith: SqlName
    service: SqlName
    transform: Literal["custom"]
    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    nullable: bool = True
    _impl: Transform | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _resolve_and_check(self) -> CustomField:
        try:
            impl = transform_named(self.name)
        except TransformLookupError as exc:
            raise ValueError(str(exc)) from exc
        try:
            samples = list(impl.samples(self.options))
        except Exception as exc:  # user code: any failure is a configuration error
            raise ValueError(
                f"transform {self.name!r}: samples() failed: {type(exc).__name__}: {exc}"
            ) from exc
        if not samples:
            raise ValueError(f"transform {self.name!r}: samples() gave no sample to check")
        for sample in samples:
            try:
                back = impl.to_monolith(impl.to_service(sample, self.options), self.options)
            except Exception as exc:  # user code
                raise ValueError(
                    f"transform {self.name!r}: sample {sample!r} fails the round trip: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if back != sample:
                raise ValueError(
                    f"transform {self.name!r} is not invertible: sample {sample!r} comes "
                    f"back as {back!r}"
                )
        self._impl = impl
        return self

    @property
    def implementation(self) -> Transform:
        """The resolved transform."""
        if self._impl is None:  # pragma: no cover - set by the validator
            raise RuntimeError(f"transform {self.name!r} was not resolved")
        return self._impl

    def to_service(self, value: Any) -> Any:
        if value is None:
            return None
        try:
            return self.implementation.to_service(value, self.options)
        except MappingValueError:
            raise
        except Exception as exc:  # user code
            raise MappingValueError(f"{self.monolith}: {value!r}: {self.name}: {exc}") from exc

    def to_monolith(self, value: Any) -> Any:
        if value is None:
            return None
        try:
            return self.implementation.to_monolith(value, self.options)
        except MappingValueError:
            raise
        except Exception as exc:  # user code
            raise MappingValueError(f"{self.service}: {value!r}: {self.name}: {exc}") from exc

    def sql(self, dialect: str, column_sql: str) -> str:
        """The transform's SQL expression of the service form from ``column_sql``."""
        expression = self.implementation.sql(dialect, column_sql, self.options)
        if "%" in expression:
            raise MappingValueError(
                f"{self.monolith}: transform {self.name!r} gave SQL with a '%', which drivers "
                f"interpolate: {expression}"
            )
        return expression


class CopySource(BaseModel):
    """Where a denormalised column's value comes from: pair ``table``'s service ``column``."""

    model_config = _FROZEN

    table: str
    column: SqlName
    via: SqlName = Field(description="This pair's service column holding the source row's key.")


class CopyField(BaseModel):
    """A service-only column holding a copy of another pair's column (no monolith column).

    ``{service: book_title, copy_of: {table: books, column: title, via: book_id}}``:
    ``book_title`` holds the ``title`` of the ``books`` row whose key is in this row's
    ``book_id``. The row conversions leave it out (it is not in the monolith's row);
    the reconciler checks it against the monolith's source column through the key.
    """

    model_config = _FROZEN

    service: SqlName
    copy_of: CopySource


def _transform_of(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("transform", TransformKind.IDENTITY.value))
    return str(getattr(value, "transform", TransformKind.IDENTITY.value))


FieldMapping = Annotated[
    Annotated[IdentityField, Tag("identity")]
    | Annotated[DecimalCentsField, Tag("decimal_cents")]
    | Annotated[BoolEnumField, Tag("bool_enum")]
    | Annotated[TimestampField, Tag("timestamp")]
    | Annotated[EnumMapField, Tag("enum_map")]
    | Annotated[JsonField, Tag("json")]
    | Annotated[CustomField, Tag("custom")],
    Discriminator(_transform_of),
]


def _fields_admit_copies(schema: dict[str, Any]) -> None:
    """The JSON Schema's ``fields`` items also admit a copied column, as the plan writes it."""
    fields = schema.get("properties", {}).get("fields", {})
    copy = schema.get("properties", {}).get("copies", {}).get("items")
    if "items" in fields and copy:
        fields["items"] = {"anyOf": [fields["items"], copy]}


class TableMapping(BaseModel):
    """How one monolith table corresponds to one service table."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=_fields_admit_copies)

    name: str = Field(description="Name of the pair, used on the command line (--table).")
    monolith_table: SqlName
    service_table: SqlName
    key: KeyMapping
    fields: tuple[FieldMapping, ...]
    references: tuple[Reference, ...] = Field(
        default=(),
        description="Columns holding another pair's key (migration_plans.core.references).",
    )
    copies: tuple[CopyField, ...] = Field(
        default=(),
        description="Service-only denormalised columns (the plan lists them under fields:).",
    )

    @model_validator(mode="before")
    @classmethod
    def _copies_out_of_fields(cls, data: Any) -> Any:
        """``fields:`` entries with ``copy_of`` are copies, kept apart from the mapped fields."""
        if not isinstance(data, dict) or not isinstance(data.get("fields"), list | tuple):
            return data
        entries = list(data["fields"])
        copies = [entry for entry in entries if isinstance(entry, dict) and "copy_of" in entry]
        if not copies:
            return data
        data = dict(data)
        data["fields"] = [entry for entry in entries if entry not in copies]
        data["copies"] = [*data.get("copies", ()), *copies]
        return data

    @model_validator(mode="after")
    def _copies_come_through_a_mapped_column(self) -> TableMapping:
        mapped = {field.service: field for field in self.fields}
        for copy in self.copies:
            via = mapped.get(copy.copy_of.via)
            if via is None:
                raise ValueError(
                    f"copy_of: via {copy.copy_of.via!r} of {copy.service!r} is not a mapped "
                    f"service column of {self.name!r} (mapped: {', '.join(sorted(mapped))})"
                )
            if via.transform != TransformKind.IDENTITY:
                raise ValueError(
                    f"copy_of: via {copy.copy_of.via!r} holds a key, which is never "
                    f"transformed; its field has transform {via.transform!r}"
                )
        return self

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
            columns = [getattr(field, side) for field in self.fields]
            if side == "service":
                columns += [copy.service for copy in self.copies]
            for column in columns:
                if column in seen:
                    raise ValueError(
                        f"not invertible: {side} column {column!r} is mapped more than once"
                    )
                seen.add(column)
        return self

    @property
    def copied_columns(self) -> list[str]:
        """The service-only columns that copy another pair's column, in declaration order."""
        return [copy.service for copy in self.copies]

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
        try:
            if to == "service":
                for field in self.fields:
                    converted[field.service] = field.to_service(row.get(field.monolith))
            else:
                for field in self.fields:
                    converted[field.monolith] = field.to_monolith(row.get(field.service))
        except MappingValueError as exc:
            raise MappingValueError(f"table pair {self.name!r}: {exc}") from exc
        return converted

    def canonical_from_monolith(self, row: Mapping[str, Any]) -> Row:
        """The canonical (service-form) rendering of a monolith row."""
        return self.to_service(row)

    def canonical_from_service(self, row: Mapping[str, Any]) -> Row:
        """The canonical rendering of a service row (normalises timestamps).

        Each field goes to the monolith form and back, except identity fields, which
        are kept as stored: under ``empty_string: "null"`` the service's ``''`` is not
        its canonical NULL, and stays a difference.
        """
        canonical: Row = {}
        if not self.key.id_map:
            canonical.update(zip(self.key.service_columns, self.service_key(row), strict=True))
        try:
            for field in self.fields:
                value = row.get(field.service)
                if field.transform != TransformKind.IDENTITY:
                    value = field.to_service(field.to_monolith(value))
                canonical[field.service] = value
        except MappingValueError as exc:
            raise MappingValueError(f"table pair {self.name!r}: {exc}") from exc
        return canonical


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

    @model_validator(mode="after")
    def _split_tables_share_the_key_only(self) -> ContextMapping:
        """Pairs fed by one monolith table have its key and disjoint monolith columns."""
        for name in dict.fromkeys(table.monolith_table for table in self.tables):
            pairs = self.pairs_of_monolith_table(name)
            first = pairs[0]
            owner: dict[str, str] = {}
            for pair in pairs:
                if pair.key.monolith_columns != first.key.monolith_columns:
                    raise ValueError(
                        f"pairs {first.name!r} and {pair.name!r} both read monolith table "
                        f"{name!r} but with different keys ({', '.join(first.key.monolith_columns)}"
                        f" vs {', '.join(pair.key.monolith_columns)})"
                    )
                for field in pair.fields:
                    if field.monolith in owner:
                        raise ValueError(
                            f"pairs {owner[field.monolith]!r} and {pair.name!r} both map "
                            f"monolith column {name}.{field.monolith}: a split table gives "
                            "each column to one pair (only the key is shared)"
                        )
                    owner[field.monolith] = pair.name
        return self

    @model_validator(mode="after")
    def _copies_name_a_pair_column(self) -> ContextMapping:
        for table in self.tables:
            for copy in table.copies:
                source = self._pair_or_none(copy.copy_of.table)
                if source is None:
                    raise ValueError(
                        f"{table.name}.{copy.service}: copy_of names pair "
                        f"{copy.copy_of.table!r}, which context {self.context!r} does not have "
                        f"(known: {', '.join(t.name for t in self.tables)})"
                    )
                if source.key.is_composite:
                    raise ValueError(
                        f"{table.name}.{copy.service}: copy_of pair {source.name!r} has a "
                        "composite key, which one via column cannot hold"
                    )
                if copy.copy_of.column not in [field.service for field in source.fields]:
                    raise ValueError(
                        f"{table.name}.{copy.service}: copy_of column {copy.copy_of.column!r} "
                        f"is not a mapped service column of {source.name!r}"
                    )
        return self

    def _pair_or_none(self, name: str) -> TableMapping | None:
        return next((table for table in self.tables if table.name == name), None)

    def pairs_of_monolith_table(self, name: str) -> tuple[TableMapping, ...]:
        """The pairs that read monolith table ``name`` (two or more when it is split)."""
        return tuple(table for table in self.tables if table.monolith_table == name)

    def table(self, name: str) -> TableMapping:
        """The pair called ``name``; :class:`KeyError` listing the known names otherwise."""
        for table in self.tables:
            if table.name == name:
                return table
        known = ", ".join(table.name for table in self.tables)
        raise KeyError(f"context {self.context!r} has no table {name!r} (known: {known})")


def split_table_problems(contexts: Mapping[str, ContextMapping]) -> list[ReferenceProblem]:
    """Monolith tables read by pairs of more than one context: a split table stays in one.

    One problem per later pair, located at its ``monolith_table``.
    """
    owner: dict[str, tuple[str, str]] = {}
    problems: list[ReferenceProblem] = []
    for context, mapping in sorted(contexts.items()):
        for index, table in enumerate(mapping.tables):
            first = owner.setdefault(table.monolith_table, (context, table.name))
            if first[0] != context:
                problems.append(
                    ReferenceProblem(
                        context=context,
                        loc=("tables", index, "monolith_table"),
                        message=(
                            f"monolith table {table.monolith_table!r} is also read by "
                            f"context {first[0]!r} (pair {first[1]!r}): a split table's "
                            "pairs belong to one context"
                        ),
                    )
                )
    return problems


def load_context_mapping(path: Path) -> ContextMapping:
    """Load the ``tables:`` section of a plan file; :class:`ConfigError` names file:line:field."""
    return SourceDocument.read(path).validate(ContextMapping)
