"""Rows for the service tests, written where the phase reads them.

``monolith``: straight into the monolith's tables (as Django would have stored them);
``service``: through the service's own write path with ``NO_CHANGES`` (like the backfill).
Both produce the same logical rows with the same ids, so the same assertions hold in
every phase.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import insert

from extracted_services.catalog import crud as catalog_crud
from extracted_services.catalog import db as catalog_db
from extracted_services.common.changes import NO_CHANGES
from extracted_services.common.database import service_engine, session_factory
from extracted_services.inventory import crud as inventory_crud
from extracted_services.inventory import db as inventory_db

BASE_TIME = datetime(2026, 11, 20, 9, 30, 0, 123456, tzinfo=UTC)

CATEGORIES = [
    {"id": 1, "name": "Tools", "slug": "tools", "description": "Hand tools"},
    {"id": 2, "name": "Garden", "slug": "garden", "description": ""},
]
PRODUCTS = [
    {
        "id": i,
        "sku": f"SKU-{i:03d}",
        "name": f"Product {chr(64 + i)}",
        "description": f"#{i}",
        "price": Decimal(f"{10 + (i * 7) % 23}.{i:02d}"),
        "is_active": i % 4 != 0,
        "category_id": 1 if i % 2 else 2,
        "created_at": BASE_TIME + timedelta(minutes=i),
        "updated_at": BASE_TIME + timedelta(hours=i),
    }
    for i in range(1, 26)
]
WAREHOUSES = [
    {"id": 1, "code": "NORTH", "name": "North"},
    {"id": 2, "code": "SOUTH", "name": "South"},
]
STOCK = [
    {"id": 1, "product_id": 1, "warehouse_id": 1, "quantity": 5, "reserved": 0},
    {"id": 2, "product_id": 1, "warehouse_id": 2, "quantity": 3, "reserved": 1},
    {"id": 3, "product_id": 2, "warehouse_id": 1, "quantity": 10, "reserved": 0},
    {"id": 4, "product_id": 3, "warehouse_id": 2, "quantity": 0, "reserved": 0},
]


def _stock_rows() -> list[dict[str, Any]]:
    return [{**row, "updated_at": BASE_TIME + timedelta(seconds=row["id"])} for row in STOCK]


def seed_monolith(url: str, *, catalog: bool = True, inventory: bool = True) -> None:
    """Insert the rows into the monolith's own tables."""
    engine = service_engine(url)
    with engine.begin() as conn:
        if catalog or inventory:
            conn.execute(insert(catalog_db.catalog_category), CATEGORIES)
            conn.execute(insert(catalog_db.catalog_product), PRODUCTS)
        if inventory:
            conn.execute(insert(inventory_db.inventory_warehouse), WAREHOUSES)
            conn.execute(insert(inventory_db.inventory_stockitem), _stock_rows())
    engine.dispose()


def seed_catalog_service(url: str) -> None:
    """Insert the catalog rows into the catalog service's tables (service form, same ids)."""
    engine = service_engine(url)
    with session_factory(engine)() as session, session.begin():
        for row in CATEGORIES:
            values = catalog_crud.categories_pair().to_service(row)
            catalog_crud.create_category(session, values, changes=NO_CHANGES)
        for row in PRODUCTS:
            values = catalog_crud.products_pair().to_service(row)
            catalog_crud.create_product(session, values, changes=NO_CHANGES)
    engine.dispose()


def seed_inventory_service(url: str) -> None:
    """Insert the inventory rows into the inventory service's tables (service form, same ids)."""
    engine = service_engine(url)
    with session_factory(engine)() as session, session.begin():
        for row in WAREHOUSES:
            values = inventory_crud.warehouses_pair().to_service(row)
            inventory_crud.create_warehouse(session, values, changes=NO_CHANGES)
        for row in _stock_rows():
            values = inventory_crud.stock_levels_pair().to_service(row)
            inventory_crud.create_stock_level(session, values, changes=NO_CHANGES)
    engine.dispose()


def seed_for_phase(context: str, phase: str, monolith_url: str, service_url: str) -> None:
    """Put the rows where ``context`` reads them in ``phase`` (the monolith gets them always)."""
    seed_monolith(monolith_url)
    if phase == "shared":
        return
    if context == "catalog":
        seed_catalog_service(service_url)
    else:
        seed_inventory_service(service_url)
