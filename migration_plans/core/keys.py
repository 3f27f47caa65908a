"""A table pair's key: one or more columns on each side, their types, and the key's text form.

A plan names the key of a pair under ``key:``; every form of before stays valid::

    key: {monolith: id, service: id}                                  # integer key
    key: {monolith: code, service: code, type: text}                  # integer | text | uuid
    key: {monolith: [branch_id, isbn], service: [branch_id, isbn], type: [integer, text]}
    key: {monolith: id, service: id, service_type: uuid, id_map: true}

A composite key lists its columns in the same order on both sides (``type`` is one type
for all of them or a list as long as the columns). ``id_map: true`` says the service
generates its own keys: the toolkit keeps a map from each monolith key to the service's
(:mod:`migration_plans.core.idmap`), and the mapping's row conversion leaves the key out
for the caller to translate. ``service_type`` defaults to ``type``.

The key's *text* (the outbox's ``aggregate_key``, the relay's partition bucket input, the
key the reconciler reports) is :meth:`KeyMapping.text_of`: a single column's value as
``str(value)``, a composite key's parts each escaped (``\\`` -> ``\\\\``, ``|`` -> ``\\|``)
and joined with ``|``. :meth:`KeyMapping.text_sql` is the SQL expression giving the same
text from a row, on PostgreSQL and SQLite, and :meth:`KeyMapping.values_of` reads a key
text back into typed values.

    key.text_of((3, "978-0|1"))        # '3|978-0\\|1'
    key.values_of("3|978-0\\|1")        # (3, '978-0|1')
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from migration_plans.core.sqlnames import check_identifier, quote_ident

__all__ = ["CompositeKeyError", "KeyMapping", "KeyTextError", "KeyType", "Side"]

Side = Literal["monolith", "service"]

SEPARATOR = "|"
ESCAPE = "\\"


class CompositeKeyError(ValueError):
    """A caller that handles single-column keys only met a composite key."""


class KeyTextError(ValueError):
    """A key text does not parse back into the key's columns and types."""


class KeyType(StrEnum):
    """The type of one key column."""

    INTEGER = "integer"
    TEXT = "text"
    UUID = "uuid"


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _types_for(raw: Any, columns: int, name: str) -> list[str]:
    """``raw`` (one type or a list) as one type name per column; ValueError saying why not."""
    listed = _as_list(raw)
    if len(listed) == 1 and not isinstance(raw, list | tuple):
        listed = listed * columns
    if len(listed) != columns:
        raise ValueError(
            f"{name} lists {len(listed)} types for {columns} key columns: give one type for "
            "all of them or one per column"
        )
    known = ", ".join(kind.value for kind in KeyType)
    for item in listed:
        if not isinstance(item, str) or item not in KeyType.__members__.values():
            raise ValueError(f"{name}: unknown key type {item!r} (known: {known})")
    return [str(item) for item in listed]


def _checked_columns(columns: tuple[str, ...]) -> tuple[str, ...]:
    for column in columns:
        check_identifier(column)
    return columns


KeyColumns = Annotated[
    tuple[str, ...],
    BeforeValidator(lambda value: tuple(_as_list(value))),
    AfterValidator(_checked_columns),
]
"""Key column names: one name or a list, each a plain SQL name."""


def _plan_forms(schema: dict[str, Any]) -> None:
    """The JSON Schema as a plan writes a key: one column or a list, one type or a list,
    ``type`` and ``service_type`` optional."""
    properties = schema.get("properties", {})
    for name in ("monolith", "service", "type", "service_type"):
        listed = properties.get(name)
        if listed and "items" in listed:
            one = dict(listed["items"])
            properties[name] = {
                "anyOf": [one, {"type": "array", "items": one, "minItems": 1}],
                "title": listed.get("title", name),
            }
    properties.get("type", {})["default"] = KeyType.INTEGER.value
    schema["required"] = [
        name for name in schema.get("required", []) if name in ("monolith", "service")
    ]


class KeyMapping(BaseModel):
    """The key columns of a pair on each side, in order, with their types."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, json_schema_extra=_plan_forms
    )

    monolith_columns: KeyColumns = Field(alias="monolith", min_length=1)
    service_columns: KeyColumns = Field(alias="service", min_length=1)
    types: tuple[KeyType, ...] = Field(alias="type")
    service_types: tuple[KeyType, ...] = Field(alias="service_type")
    id_map: bool = Field(
        default=False,
        description="The service generates its own keys; the toolkit keeps an id map.",
    )

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for field, alias in (
            ("monolith_columns", "monolith"),
            ("service_columns", "service"),
            ("types", "type"),
            ("service_types", "service_type"),
        ):
            if field in data and alias not in data:
                data[alias] = data.pop(field)
        if "monolith" not in data or "service" not in data:
            return data
        monolith = _as_list(data["monolith"])
        service = _as_list(data["service"])
        if len(monolith) != len(service):
            raise ValueError(
                f"the key names {len(monolith)} monolith column(s) {monolith} and "
                f"{len(service)} service column(s) {service}: list the same number, in "
                "corresponding order"
            )
        data["type"] = _types_for(data.get("type", KeyType.INTEGER.value), len(monolith), "type")
        data["service_type"] = _types_for(
            data.get("service_type", data["type"]), len(service), "service_type"
        )
        return data

    @model_validator(mode="after")
    def _consistent(self) -> KeyMapping:
        for side, columns in (
            ("monolith", self.monolith_columns),
            ("service", self.service_columns),
        ):
            twice = sorted({column for column in columns if columns.count(column) > 1})
            if twice:
                raise ValueError(f"{side} key column {', '.join(twice)} is listed more than once")
        if self.id_map and self.is_composite:
            raise ValueError(
                "id_map: true needs a single-column key (the id map holds one monolith key "
                f"and one service key per row); this key has {len(self.monolith_columns)} columns"
            )
        if not self.id_map and self.service_types != self.types:
            raise ValueError(
                f"service_type {[t.value for t in self.service_types]} differs from type "
                f"{[t.value for t in self.types]}: without id_map: true the key is copied "
                "unchanged, so both sides have the same type"
            )
        return self

    @property
    def is_composite(self) -> bool:
        """Whether the key has more than one column."""
        return len(self.monolith_columns) > 1

    @property
    def monolith(self) -> str:
        """The single monolith key column; :class:`CompositeKeyError` for a composite key."""
        return self._single(self.monolith_columns)

    @property
    def service(self) -> str:
        """The single service key column; :class:`CompositeKeyError` for a composite key."""
        return self._single(self.service_columns)

    def _single(self, columns: tuple[str, ...]) -> str:
        if self.is_composite:
            raise CompositeKeyError(
                f"key ({', '.join(self.monolith_columns)}) <-> "
                f"({', '.join(self.service_columns)}) is composite: this caller supports "
                "single-column keys only"
            )
        return columns[0]

    def columns(self, side: Side) -> tuple[str, ...]:
        """The key columns on ``side``."""
        return self.monolith_columns if side == "monolith" else self.service_columns

    def types_of(self, side: Side) -> tuple[KeyType, ...]:
        """The key column types on ``side``."""
        return self.types if side == "monolith" else self.service_types

    def text_of(self, values: Sequence[Any], side: Side = "monolith") -> str:
        """The key text of ``values`` (one per key column, in order)."""
        kinds = self.types_of(side)
        if len(values) != len(kinds):
            raise KeyTextError(
                f"key ({', '.join(self.columns(side))}) has {len(kinds)} column(s), "
                f"got {len(values)} value(s): {list(values)!r}"
            )
        parts = [_part_text(value, kind) for value, kind in zip(values, kinds, strict=True)]
        if len(parts) == 1:
            return parts[0]
        return SEPARATOR.join(_escape(part) for part in parts)

    def values_of(self, text: str, side: Side = "monolith") -> tuple[Any, ...]:
        """The typed key values (int / str / :class:`uuid.UUID`) that ``text`` stands for."""
        kinds = self.types_of(side)
        parts = [text] if len(kinds) == 1 else _split(text)
        if len(parts) != len(kinds):
            raise KeyTextError(
                f"key text {text!r} has {len(parts)} part(s), key "
                f"({', '.join(self.columns(side))}) has {len(kinds)}"
            )
        return tuple(_typed(part, kind, text) for part, kind in zip(parts, kinds, strict=True))

    def text_sql(self, qualifier: str | None, dialect: str, side: Side = "monolith") -> str:
        """The SQL expression giving :meth:`text_of` of a row (no ``%`` in it).

        ``qualifier`` is a table alias (quoted) or ``None``; ``dialect`` is
        ``postgresql`` or ``sqlite``. Both need standard string literals (PostgreSQL's
        ``standard_conforming_strings`` on, its default).
        """
        parts = self.part_sqls(qualifier, dialect, side)
        if len(parts) == 1:
            return parts[0]
        escaped = [
            part if kind in _PLAIN else f"replace(replace({part}, '\\', '\\\\'), '|', '\\|')"
            for part, kind in zip(parts, self.types_of(side), strict=True)
        ]
        return " || '|' || ".join(escaped)

    def part_sqls(self, qualifier: str | None, dialect: str, side: Side = "monolith") -> list[str]:
        """The SQL expression of each key column's text, unescaped, in key order (the
        parts :meth:`text_sql` joins; equal keys give equal parts on both sides)."""
        prefix = f"{quote_ident(qualifier)}." if qualifier else ""
        return [
            _part_sql(f"{prefix}{quote_ident(column)}", kind, dialect)
            for column, kind in zip(self.columns(side), self.types_of(side), strict=True)
        ]


_PLAIN = (KeyType.INTEGER, KeyType.UUID)
"""Key types whose text never holds the separator or the escape (SQL skips escaping them)."""


def _part_text(value: Any, kind: KeyType) -> str:
    if value is None:
        raise KeyTextError("a key column is NULL: keys have a value in every column")
    if kind is KeyType.UUID and not isinstance(value, uuid.UUID):
        try:
            return str(uuid.UUID(str(value)))
        except ValueError as exc:
            raise KeyTextError(f"{value!r} is not a uuid") from exc
    return str(value)


def _part_sql(column_sql: str, kind: KeyType, dialect: str) -> str:
    if kind is KeyType.UUID and dialect == "sqlite":
        # SQLite keeps a uuid as text, hyphenated or as SQLAlchemy's 32 hex digits.
        text = f"lower(CAST({column_sql} AS TEXT))"
        hyphenated = " || '-' || ".join(
            f"substr({text}, {start}, {length})"
            for start, length in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
        )
        return f"(CASE WHEN length({text}) = 32 THEN {hyphenated} ELSE {text} END)"
    return f"CAST({column_sql} AS TEXT)"


def _escape(part: str) -> str:
    return part.replace(ESCAPE, ESCAPE * 2).replace(SEPARATOR, ESCAPE + SEPARATOR)


def _split(text: str) -> list[str]:
    """The parts of a composite key text, unescaped; KeyTextError for a dangling escape."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == ESCAPE:
            following = next(chars, None)
            if following is None:
                raise KeyTextError(f"key text {text!r} ends in an unpaired {ESCAPE!r}")
            current.append(following)
        elif char == SEPARATOR:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _typed(part: str, kind: KeyType, text: str) -> Any:
    try:
        if kind is KeyType.INTEGER:
            return int(part)
        if kind is KeyType.UUID:
            return uuid.UUID(part)
    except ValueError as exc:
        raise KeyTextError(f"key text {text!r}: {part!r} is not {kind.value}") from exc
    return part
