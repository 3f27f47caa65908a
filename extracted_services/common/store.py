"""Reads in service terms, from whichever side the phase reads.

A :class:`TableView` is one table pair of the mapping seen from one side: the
service's own table (dual_write, split) or the monolith's (shared). Callers filter,
order and fetch with *service* column names and values and always get service-form
rows back; on the monolith side the mapping translates both ways.

    view = TableView.monolith(products_pair, catalog_product_table)
    rows = fetch(session, view, Query(filters=(("status", "active"),), ordering=("-price_cents",)))
"""

from __future__ import annotations

from collections.abc import Mapping
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

    def column(self, service_column: str) -> ColumnElement[Any]:
        """The SQL column holding ``service_column`` on this side."""
        if self.side is Side.SERVICE:
            return self.table.c[service_column]
        if service_column == self.pair.key.service:
            return self.table.c[self.pair.key.monolith]
        return self.table.c[_field(self.pair, service_column).monolith]

    def value(self, service_column: str, value: Any) -> Any:
        """A service-form value as stored on this side."""
        if self.side is Side.SERVICE or service_column == self.pair.key.service:
            return value
        return _field(self.pair, service_column).to_monolith(value)

    def columns(self) -> list[ColumnElement[Any]]:
        names = self.pair.service_columns
        if self.side is Side.MONOLITH:
            names = self.pair.monolith_columns
        return [self.table.c[name] for name in names]

    def service_row(self, row: Mapping[str, Any]) -> Row:
        """A row read from this side, in service form."""
        if self.side is Side.MONOLITH:
            return self.pair.to_service(row)
        return {name: row[name] for name in self.pair.service_columns}


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
    """Matching rows in order (ties broken by key), in service form."""
    statement = _where(view, query, select(*view.columns()))
    terms = [*query.ordering]
    if view.pair.key.service not in {term.lstrip("-") for term in terms}:
        terms.append(view.pair.key.service)
    for term in terms:
        column = view.column(term.lstrip("-"))
        statement = statement.order_by(column.desc() if term.startswith("-") else column.asc())
    statement = statement.offset(offset).limit(limit)
    return [view.service_row(dict(row)) for row in session.execute(statement).mappings()]


def get(session: Session, view: TableView, key: Any) -> Row | None:
    """The row with ``key`` in service form, or ``None``."""
    statement = select(*view.columns()).where(view.column(view.pair.key.service) == key)
    row = session.execute(statement).mappings().first()
    return None if row is None else view.service_row(dict(row))
