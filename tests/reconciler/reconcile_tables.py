"""Monolith and service tables of the catalog context, on SQLite and PostgreSQL.

The shapes follow ``migration_plans/templates/catalog.yaml``: the monolith's ``catalog_product``
(decimal price, boolean is_active, name) against the service's ``products``
(integer price_cents, status enum, title).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from migration_plans.core.database import sqlalchemy_url
from migration_plans.core.mapping import ContextMapping

monolith_metadata = sa.MetaData()
service_metadata = sa.MetaData()

catalog_category = sa.Table(
    "catalog_category",
    monolith_metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("slug", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
)
catalog_product = sa.Table(
    "catalog_product",
    monolith_metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("price", sa.Numeric(10, 2), nullable=False),
    sa.Column("is_active", sa.Boolean, nullable=False),
    sa.Column("category_id", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
categories = sa.Table(
    "categories",
    service_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("slug", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
)
products = sa.Table(
    "products",
    service_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("price_cents", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("category_id", sa.Integer, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

EPOCH = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def product_row(i: int) -> dict[str, Any]:
    """A monolith product row with varied values (unicode, NULL description)."""
    return {
        "id": i,
        "sku": f"SKU-{i:05d}",
        "name": f"Product {i} ☕ é" if i % 7 == 0 else f"Product {i}",
        "description": None if i % 5 == 0 else f"Description | of {i}",
        "price": Decimal(i % 10000) / 100,
        "is_active": i % 3 != 0,
        "category_id": None if i % 11 == 0 else i % 4 + 1,
        "created_at": EPOCH + timedelta(seconds=i, microseconds=i % 1000),
        "updated_at": EPOCH + timedelta(days=1, seconds=i),
    }


@dataclass
class Pair:
    """A monolith database and a service database holding the catalog tables."""

    backend: str
    monolith_url: str
    service_url: str
    mapping: ContextMapping

    @property
    def monolith(self) -> sa.Engine:
        return engine(self.monolith_url)

    @property
    def service(self) -> sa.Engine:
        return engine(self.service_url)

    def seed(self, count: int, *, start: int = 1) -> None:
        """``count`` identical products on both sides (through the mapping)."""
        rows = [product_row(i) for i in range(start, start + count)]
        table = self.mapping.table("products")
        insert(self.monolith, catalog_product, rows)
        insert(self.service, products, [table.to_service(row) for row in rows])

    def execute(self, side: str, statement: Any, params: Any = None) -> None:
        with (self.monolith if side == "monolith" else self.service).begin() as conn:
            conn.execute(statement, params)


ENGINES: dict[str, sa.Engine] = {}


def engine(url: str) -> sa.Engine:
    if url not in ENGINES:
        ENGINES[url] = sa.create_engine(sqlalchemy_url(url))
    return ENGINES[url]


def insert(target: sa.Engine, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        with target.begin() as conn:
            conn.execute(table.insert(), list(rows))
