"""Where the inventory reads from in each phase: its own tables or the monolith's.

The monolith's tables are declared here, read-only, as the anti-corruption layer
sees them (column names are the contract in ``migration_plans/templates/inventory.yaml``).
``catalog_product`` is only used to validate ``?product=`` in the shared phase.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Integer, MetaData, String, Table

from extracted_services.common.store import TableView
from extracted_services.inventory.crud import (
    reservations_pair,
    stock_levels_pair,
    warehouses_pair,
)
from extracted_services.inventory.models import Reservation, StockLevel, Warehouse
from migration_plans.core.phase import Phase

legacy_metadata = MetaData()

inventory_warehouse = Table(
    "inventory_warehouse",
    legacy_metadata,
    Column("id", BigInteger, primary_key=True),
    Column("code", String(16), nullable=False),
    Column("name", String(100), nullable=False),
)

inventory_stockitem = Table(
    "inventory_stockitem",
    legacy_metadata,
    Column("id", BigInteger, primary_key=True),
    Column("product_id", BigInteger, nullable=False),
    Column("warehouse_id", BigInteger, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("reserved", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

inventory_reservation = Table(
    "inventory_reservation",
    legacy_metadata,
    Column("id", BigInteger, primary_key=True),
    Column("order_id", BigInteger, nullable=False),
    Column("stock_item_id", BigInteger, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("released", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

catalog_product = Table(
    "catalog_product", legacy_metadata, Column("id", BigInteger, primary_key=True)
)


def views(phase: Phase) -> dict[str, TableView]:
    """Each table pair as the phase reads it."""
    if phase is Phase.SHARED:
        return {
            "warehouses": TableView.monolith(warehouses_pair(), inventory_warehouse),
            "stock_levels": TableView.monolith(stock_levels_pair(), inventory_stockitem),
            "reservations": TableView.monolith(reservations_pair(), inventory_reservation),
        }
    return {
        "warehouses": TableView.service(warehouses_pair(), Warehouse.__table__),  # type: ignore[arg-type]
        "stock_levels": TableView.service(stock_levels_pair(), StockLevel.__table__),  # type: ignore[arg-type]
        "reservations": TableView.service(reservations_pair(), Reservation.__table__),  # type: ignore[arg-type]
    }
