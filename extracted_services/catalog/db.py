"""Where the catalog reads from in each phase: its own tables or the monolith's.

The monolith's tables are declared here, read-only, as the anti-corruption layer
sees them (column names are the contract in ``migration_plans/templates/catalog.yaml``).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, MetaData, Numeric, String, Table, Text

from extracted_services.catalog.crud import categories_pair, products_pair
from extracted_services.catalog.models import Category, Product
from extracted_services.common.store import TableView
from migration_plans.core.phase import Phase

legacy_metadata = MetaData()

catalog_category = Table(
    "catalog_category",
    legacy_metadata,
    Column("id", BigInteger, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("slug", String(100), nullable=False),
    Column("description", Text, nullable=False),
)

catalog_product = Table(
    "catalog_product",
    legacy_metadata,
    Column("id", BigInteger, primary_key=True),
    Column("sku", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("price", Numeric(10, 2), nullable=False),
    Column("is_active", Boolean, nullable=False),
    Column("category_id", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


def views(phase: Phase) -> dict[str, TableView]:
    """Each table pair as the phase reads it."""
    if phase is Phase.SHARED:
        return {
            "categories": TableView.monolith(categories_pair(), catalog_category),
            "products": TableView.monolith(products_pair(), catalog_product),
        }
    return {
        "categories": TableView.service(categories_pair(), Category.__table__),  # type: ignore[arg-type]
        "products": TableView.service(products_pair(), Product.__table__),  # type: ignore[arg-type]
    }
