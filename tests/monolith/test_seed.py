"""The seed command: deterministic, consistent rows on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from .conftest import MonolithDatabases, manage

SEED = ["seed", "--products", "200", "--customers", "10", "--orders", "40", "--seed", "7"]

CONSISTENCY = {
    "stock reserved = held reservations": """
        SELECT count(*) FROM inventory_stockitem s
        WHERE s.reserved <> (SELECT coalesce(sum(r.quantity), 0) FROM inventory_reservation r
                             WHERE r.stock_item_id = s.id AND r.released = %(false)s)""",
    "orders without lines": """
        SELECT count(*) FROM orders_order o
        WHERE NOT EXISTS (SELECT 1 FROM orders_orderline l WHERE l.order_id = o.id)""",
    "orders whose payment differs from the total": """
        SELECT count(*) FROM orders_order o
        WHERE NOT EXISTS (SELECT 1 FROM payments_payment p
                          WHERE p.order_id = o.id AND p.amount = o.total)""",
    "shipped orders without shipment": """
        SELECT count(*) FROM orders_order o WHERE o.status = 'shipped'
        AND NOT EXISTS (SELECT 1 FROM shipping_shipment s WHERE s.order_id = o.id)""",
    "negative availability": "SELECT count(*) FROM inventory_stockitem WHERE reserved > quantity",
}


def _query(database_url: str) -> Callable[[str], list[tuple[Any, ...]]]:
    if database_url.startswith("sqlite:///"):
        path = database_url.removeprefix("sqlite:///")

        def run_sqlite(sql: str) -> list[tuple[Any, ...]]:
            with sqlite3.connect(path) as conn:
                return conn.execute(sql.replace("%(false)s", "0")).fetchall()

        return run_sqlite

    def run_pg(sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(database_url) as conn:
            return conn.execute(sql.replace("%(false)s", "false")).fetchall()

    return run_pg


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def database_url(request: pytest.FixtureRequest, monolith_databases: MonolithDatabases) -> str:
    """A fresh, migrated monolith database per backend."""
    return monolith_databases.fresh(request, str(request.param))


SNAPSHOT = (
    "SELECT p.id, p.sku, p.name, p.price, p.is_active, p.category_id,"
    " (SELECT sum(quantity) FROM inventory_stockitem s WHERE s.product_id = p.id)"
    " FROM catalog_product p ORDER BY p.id"
)


def test_seed_is_consistent_deterministic_and_replaces_data(database_url: str) -> None:
    output = manage(database_url, *SEED).stdout
    query = _query(database_url)
    assert query("SELECT count(*) FROM catalog_product") == [(200,)]
    assert query("SELECT count(*) FROM customers_customer") == [(10,)]
    assert query("SELECT count(*) FROM catalog_product WHERE sku = 'SKU-0000200'") == [(1,)]
    assert "catalog_product" in output and "seeded in" in output
    orders = query("SELECT id, status, total FROM orders_order ORDER BY id")
    assert 0 < len(orders) <= 40
    for what, sql in CONSISTENCY.items():
        assert query(sql) == [(0,)], what
    products = query(SNAPSHOT)

    manage(database_url, *SEED)
    assert query(SNAPSHOT) == products
    assert query("SELECT id, status, total FROM orders_order ORDER BY id") == orders
    assert query("SELECT max(id) FROM catalog_product") == [(200,)]
