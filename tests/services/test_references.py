"""The catalog refuses to delete what inventory's rows, still in the monolith, reference: 409
``in_use``, the monolith's own answer, in every write phase, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select

from extracted_services.catalog.models import Product
from migration_plans.core.database import sqlalchemy_url
from migration_plans.core.outbox import outbox_table
from tests.services.conftest import identity_headers
from tests.services.seed import seed_for_phase

IN_USE = {
    "code": "in_use",
    "detail": "The resource is referenced by other records and cannot be deleted.",
}
"""What the monolith answers (legacy_monolith.core.exceptions.InUse, from on_delete=PROTECT)."""


def _products_and_deletes(service_url: str) -> tuple[set[int], int]:
    engine = create_engine(sqlalchemy_url(service_url))
    with engine.connect() as conn:
        products = set(conn.execute(select(Product.id)).scalars())
        deletes = conn.execute(
            select(outbox_table.c.id).where(outbox_table.c.operation == "delete")
        ).all()
    engine.dispose()
    return products, len(deletes)


@pytest.mark.parametrize("phase", ["dual_write", "split"])
def test_a_product_stock_references_in_the_monolith_is_not_deleted(service_app, phase):
    client, stack = service_app("catalog", phase)
    seed_for_phase("catalog", phase, stack.monolith_url, stack.service_url)

    response = client.delete("/api/v1/products/1/", headers=identity_headers())

    assert (response.status_code, response.json()) == (409, IN_USE)
    products, deletes = _products_and_deletes(stack.service_url)
    assert 1 in products and deletes == 0
    assert client.get("/api/v1/products/1/").status_code == 200


def test_an_unreferenced_product_is_deleted(service_app):
    client, stack = service_app("catalog", "dual_write")
    seed_for_phase("catalog", "dual_write", stack.monolith_url, stack.service_url)

    assert client.delete("/api/v1/products/5/", headers=identity_headers()).status_code == 204

    products, deletes = _products_and_deletes(stack.service_url)
    assert 5 not in products and deletes == 1


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_once_inventory_is_split_its_stock_is_its_own_business(service_app, monkeypatch):
    monkeypatch.setenv("INVENTORY_PHASE", "split")
    client, stack = service_app("catalog", "dual_write")
    seed_for_phase("catalog", "dual_write", stack.monolith_url, stack.service_url)

    assert client.delete("/api/v1/products/1/", headers=identity_headers()).status_code == 204


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_category_its_products_use_is_still_refused_by_the_service_itself(service_app):
    client, stack = service_app("catalog", "dual_write")
    seed_for_phase("catalog", "dual_write", stack.monolith_url, stack.service_url)

    response = client.delete("/api/v1/categories/1/", headers=identity_headers())

    assert (response.status_code, response.json()) == (409, IN_USE)
