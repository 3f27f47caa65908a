"""The catalog's write path: every change to a mapped table is reported to a ChangeSink.

Functions take a Session (the caller owns the transaction) and service-form values.
The API passes the phase's :class:`ChangeRecorder`; the dual-write relay applying the
monolith's changes passes :data:`NO_CHANGES`, so they are not captured again.

    with session.begin():
        product = create_product(session, {"sku": "A-1", ...}, changes=changes)
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from sqlalchemy.orm import Session

from extracted_services.catalog.models import Category, Product
from extracted_services.common.changes import ChangeRecorder
from extracted_services.common.crud import remove, save
from extracted_services.common.models import utcnow
from migration_plans.core.mapping import ContextMapping, TableMapping
from migration_plans.core.outbox import Operation
from migration_plans.core.settings import mapping_for

CONTEXT = "catalog"


@cache
def catalog_mapping() -> ContextMapping:
    """The catalog's field mapping (``migration_plans/templates/catalog.yaml``)."""
    return mapping_for(CONTEXT)


def categories_pair() -> TableMapping:
    return catalog_mapping().table("categories")


def products_pair() -> TableMapping:
    return catalog_mapping().table("products")


def create_category(
    session: Session, values: Mapping[str, Any], *, changes: ChangeRecorder
) -> Category:
    """Insert a category (``values`` may carry an explicit ``id``)."""
    category = Category(**values)
    save(session, category, table=categories_pair(), operation=Operation.INSERT, changes=changes)
    return category


def update_category(
    session: Session, category: Category, values: Mapping[str, Any], *, changes: ChangeRecorder
) -> Category:
    """Change some columns of a category."""
    for column, value in values.items():
        setattr(category, column, value)
    save(session, category, table=categories_pair(), operation=Operation.UPDATE, changes=changes)
    return category


def delete_category(session: Session, category: Category, *, changes: ChangeRecorder) -> None:
    remove(session, category, table=categories_pair(), changes=changes)


def create_product(
    session: Session, values: Mapping[str, Any], *, changes: ChangeRecorder
) -> Product:
    """Insert a product; timestamps default to now."""
    now = utcnow()
    product = Product(**{"created_at": now, "updated_at": now, **values})
    save(session, product, table=products_pair(), operation=Operation.INSERT, changes=changes)
    return product


def update_product(
    session: Session, product: Product, values: Mapping[str, Any], *, changes: ChangeRecorder
) -> Product:
    """Change some columns of a product; ``updated_at`` moves to now unless given."""
    for column, value in {"updated_at": utcnow(), **values}.items():
        setattr(product, column, value)
    save(session, product, table=products_pair(), operation=Operation.UPDATE, changes=changes)
    return product


def delete_product(session: Session, product: Product, *, changes: ChangeRecorder) -> None:
    remove(session, product, table=products_pair(), changes=changes)
