"""Reads in service terms, from whichever side the phase reads.

A :class:`TableView` is one table pair of the mapping seen from one side: the
service's own table (dual_write, split) or the monolith's (shared). Callers filter,
order and fetch with *service* column names and values and always get service-form
rows back; on the monolith side the mapping translates both ways.

Keys may have several columns (matched to the monolith's by position), be text or
UUIDs. On an ``id_map`` pair the service generates its own keys, which the monolith
does not hold: read from the monolith (shared), such a pair's rows carry the
monolith's key under the service's key column, as the monolith's API shows it. A
field that copies another pair's column (``copy_of``) has no monolith column: the
monolith side leaves it out.

    view = TableView.monolith(products_pair, catalog_product_table)
    rows = fetch(session, view, Query(filters=(("status", "active"),), ordering=("-price_cents",)))
    row = get(session, copies_view, ("CEN", "9780000000001", 1))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, func, select
from sqlalchemy.orm import Session

from migration_plans.core.mapping import Row, TableMapping


class Side(StrEnum):
    SERVICE = "service"
    MONOLITH = "monolith"


@dataclass(frozen=True)
class Query:
    """Equality filters, membership filters (``column IN values``) and ordering terms
    (``"-col"`` descends), in service columns."""

    filters: tuple[tuple[str, Any], ...] = ()
    within: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    ordering: tuple[str, ...] = ()


def monolith_fields(pair: TableMapping) -> list[Any]:
    """The pair's fields that have a monolith column (a ``copy_of`` field has none)."""
    return [field for field in pair.fields if getattr(field, "monolith", None)]


def key_of(value: Any) -> tuple[Any, ...]:
    """A key as a tuple of its column values (a single value is a one-column key)."""
    return tuple(value) if isinstance(value, tuple | list) else (value,)


@dataclass(frozen=True)
class TableView:
    """One mapped table, read from one side."""

    pair: TableMapping
    table: Table
    side: Side

    @classmethod
    def service(cls, pair: TableMapping, table: Table) -> TableView:
        return cls(pair, table, Side.SERVICE)

    @classmethod
    def monolith(cls, pair: TableMapping, table: Table) -> TableView:
        return cls(pair, table, Side.MONOLITH)

    @property
    def key_columns(self) -> tuple[str, ...]:
        """The key's service column names, in order."""
        return tuple(self.pair.key.service_columns)

    def column(self, service_column: str) -> ColumnElement[Any]:
        """The SQL column holding ``service_column`` on this side."""
        if self.side is Side.SERVICE:
            return self.table.c[service_column]
        key = self.pair.key
        if service_column in key.service_columns:
            index = list(key.service_columns).index(service_column)
            return self.table.c[key.monolith_columns[index]]
        field = _field(self.pair, service_column)
        if not getattr(field, "monolith", None):
            raise KeyError(
                f"{self.pair.name}: service column {service_column!r} copies another pair's "
                "column; the monolith's table does not hold it"
            )
        return self.table.c[field.monolith]

    def value(self, service_column: str, value: Any) -> Any:
        """A service-form value as stored on this side."""
        if self.side is Side.SERVICE or service_column in self.pair.key.service_columns:
            return value
        return _field(self.pair, service_column).to_monolith(value)

    def columns(self) -> list[ColumnElement[Any]]:
        if self.side is Side.SERVICE:
            return [self.table.c[name] for name in self.pair.service_columns]
        names = [
            *self.pair.key.monolith_columns,
            *(field.monolith for field in monolith_fields(self.pair)),
        ]
        return [self.table.c[name] for name in names]

    def service_row(self, row: Mapping[str, Any]) -> Row:
        """A row read from this side, in service form."""
        if self.side is Side.SERVICE:
            return {name: row[name] for name in self.pair.service_columns}
        key = self.pair.key
        converted: Row = dict(
            zip(key.service_columns, (row[c] for c in key.monolith_columns), strict=True)
        )
        for field in monolith_fields(self.pair):
            converted[field.service] = field.to_service(row.get(field.monolith))
        return converted

    def key_clause(self, key: Any) -> list[ColumnElement[bool]]:
        """``WHERE`` terms matching the row with ``key`` (one value per key column)."""
        values = key_of(key)
        if len(values) != len(self.key_columns):
            raise ValueError(
                f"{self.pair.name}: key ({', '.join(self.key_columns)}) has "
                f"{len(self.key_columns)} column(s), got {len(values)} value(s): {values!r}"
            )
        return [
            self.column(column) == value
            for column, value in zip(self.key_columns, values, strict=True)
        ]


def _field(pair: TableMapping, service_column: str) -> Any:
    for field in pair.fields:
        if field.service == service_column:
            return field
    raise KeyError(f"{pair.name}: no mapped service column {service_column!r}")


def _where(view: TableView, query: Query, statement: Select[Any]) -> Select[Any]:
    for column, value in query.filters:
        statement = statement.where(view.column(column) == view.value(column, value))
    for column, values in query.within:
        statement = statement.where(
            view.column(column).in_([view.value(column, value) for value in values])
        )
    return statement


def count(session: Session, view: TableView, query: Query) -> int:
    """How many rows match ``query``'s filters."""
    statement = _where(view, query, select(func.count()).select_from(view.table))
    return int(session.execute(statement).scalar_one())


def fetch(
    session: Session, view: TableView, query: Query, *, offset: int = 0, limit: int | None = None
) -> list[Row]:
    """Matching rows in order (ties broken by the key's columns), in service form."""
    statement = _where(view, query, select(*view.columns()))
    terms = [*query.ordering]
    named = {term.lstrip("-") for term in terms}
    terms += [column for column in view.key_columns if column not in named]
    for term in terms:
        column = view.column(term.lstrip("-"))
        statement = statement.order_by(column.desc() if term.startswith("-") else column.asc())
    statement = statement.offset(offset).limit(limit)
    return [view.service_row(dict(row)) for row in session.execute(statement).mappings()]


def get(session: Session, view: TableView, key: Any | Sequence[Any]) -> Row | None:
    """The row with ``key`` (a value, or a tuple for a composite key) in service form, or
    ``None``."""
    statement = select(*view.columns()).where(*view.key_clause(key))
    row = session.execute(statement).mappings().first()
    return None if row is None else view.service_row(dict(row))
