"""The shared phase cannot write the monolith even if code tried; writes and their events
commit or roll back together."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import DBAPIError

from dualwrite.outbox import OutboxSink
from extracted_services.catalog import crud
from extracted_services.catalog.models import Category, Product
from extracted_services.common.changes import ChangeRecorder
from extracted_services.common.database import service_engine, session_factory
from migration_plans.core.database import sqlalchemy_url
from migration_plans.core.outbox import outbox_table
from tests.services.seed import seed_monolith


@pytest.mark.parametrize("context", ["catalog", "inventory"])
def test_shared_phase_connection_refuses_writes_at_the_database(service_app, context):
    client, stack = service_app(context, "shared")
    seed_monolith(stack.monolith_url)
    engine = stack.app.state.serving.engine
    table = "catalog_product" if context == "catalog" else "inventory_stockitem"
    column = "name = 'hacked'" if context == "catalog" else "quantity = 0"
    with pytest.raises(DBAPIError, match=r"(?i)read-only|readonly"), engine.begin() as conn:
        conn.execute(text(f"UPDATE {table} SET {column}"))
    with stack.app.state.serving.sessions() as session, pytest.raises(DBAPIError):
        session.execute(text("DELETE FROM catalog_category"))
        session.commit()
    plain = create_engine(sqlalchemy_url(stack.monolith_url))
    with plain.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM catalog_category")).scalar_one() == 2
        assert conn.execute(text("SELECT count(*) FROM catalog_product")).scalar_one() == 25
    plain.dispose()
    assert client.get("/healthz").json()["phase"] == "shared"


def count(url: str, statement) -> int:
    engine = create_engine(sqlalchemy_url(url))
    with engine.connect() as conn:
        value = int(conn.execute(statement).scalar_one())
    engine.dispose()
    return value


def test_outbox_event_commits_and_rolls_back_with_its_row(databases):
    url = databases.service("catalog")
    engine = service_engine(url)
    sessions = session_factory(engine)
    changes = ChangeRecorder("catalog", OutboxSink(context="catalog"), request_id="r-1")

    with pytest.raises(RuntimeError), sessions() as session, session.begin():
        crud.create_category(session, {"name": "Tools", "slug": "tools"}, changes=changes)
        assert session.scalar(select(func.count()).select_from(outbox_table)) == 1
        raise RuntimeError("the request failed after the write")
    assert count(url, select(func.count()).select_from(Category)) == 0
    assert count(url, select(func.count()).select_from(outbox_table)) == 0

    with sessions() as session, session.begin():
        category = crud.create_category(
            session, {"name": "Tools", "slug": "tools"}, changes=changes
        )
        values = {"sku": "A", "title": "Saw", "price_cents": 100, "status": "active"}
        crud.create_product(session, {**values, "category_id": category.id}, changes=changes)
    engine.dispose()
    assert count(url, select(func.count()).select_from(Product)) == 1
    assert count(url, select(func.count()).select_from(outbox_table)) == 2


def test_a_failing_constraint_takes_the_event_with_it(databases):
    url = databases.service("catalog")
    engine = service_engine(url)
    sessions = session_factory(engine)
    changes = ChangeRecorder("catalog", OutboxSink(context="catalog"))
    with sessions() as session, session.begin():
        crud.create_category(session, {"name": "Tools", "slug": "tools"}, changes=changes)
    with pytest.raises(DBAPIError), sessions() as session, session.begin():
        values = {"sku": "A", "title": "Saw", "price_cents": -5, "status": "active"}
        crud.create_product(session, {**values, "category_id": 1}, changes=changes)
    engine.dispose()
    assert count(url, select(func.count()).select_from(outbox_table)) == 1
