"""Reservations lock their stock rows: a concurrent reserve waits, then sees the new stock
(and a concurrent reserve of the same order, the reservations already made)."""

from __future__ import annotations

import threading

import psycopg
import pytest

from dualwrite.outbox import OutboxSink
from extracted_services.common.changes import ChangeRecorder
from extracted_services.common.database import service_engine, session_factory
from extracted_services.common.errors import InsufficientStock
from extracted_services.inventory import crud
from migration_plans.control.processes import wait_until
from migration_plans.core.database import libpq_url
from migration_plans.testing.databases import lock_waiters
from tests.services.seed import seed_inventory_service


@pytest.mark.parametrize("backend", ["pg"], indirect=True)
def test_concurrent_reserve_waits_for_the_row_lock_and_cannot_oversell(databases):
    url = databases.service("inventory")
    seed_inventory_service(url)
    engine = service_engine(url)
    sessions = session_factory(engine)
    changes = ChangeRecorder("inventory", OutboxSink(context="inventory"))
    outcome: dict[str, object] = {}

    def second_order() -> None:
        try:
            with sessions() as session, session.begin():
                crud.reserve(session, 2, [crud.StockRequest(2, 10)], changes=changes)
            outcome["second"] = "reserved"
        except InsufficientStock as exc:
            outcome["second"] = exc.detail

    with sessions() as first, first.begin():
        crud.reserve(first, 1, [crud.StockRequest(2, 10)], changes=changes)
        thread = threading.Thread(target=second_order)
        thread.start()
        wait_until(lambda: lock_waiters(url) > 0, timeout=20, what="the second reserve to wait")
    thread.join(timeout=30)
    engine.dispose()
    assert not thread.is_alive()
    assert outcome["second"] == "Not enough stock for product 2: requested 10, available 0."


@pytest.mark.parametrize("backend", ["pg"], indirect=True)
def test_two_reserves_of_one_order_at_once_reserve_once(databases):
    url = databases.service("inventory")
    seed_inventory_service(url)
    engine = service_engine(url)
    sessions = session_factory(engine)
    changes = ChangeRecorder("inventory", OutboxSink(context="inventory"))
    created: list[bool] = []

    def reserve() -> None:
        with sessions() as session, session.begin():
            _, made = crud.reserve(session, 9, [crud.StockRequest(2, 3)], changes=changes)
        created.append(made)

    threads = [threading.Thread(target=reserve) for _ in range(2)]
    with psycopg.connect(libpq_url(url)) as holder:
        holder.execute("SELECT id FROM stock_levels WHERE product_id = 2 FOR UPDATE")
        for thread in threads:
            thread.start()
        wait_until(lambda: lock_waiters(url) == 2, timeout=20, what="both reserves to wait")
        holder.commit()
        for thread in threads:
            thread.join(timeout=30)
    engine.dispose()
    assert not any(thread.is_alive() for thread in threads)
    assert sorted(created) == [False, True]
    with psycopg.connect(libpq_url(url)) as conn:
        held = conn.execute(
            "SELECT count(*), sum(quantity) FROM reservations WHERE order_id = 9"
        ).fetchone()
        reserved = conn.execute("SELECT reserved FROM stock_levels WHERE product_id = 2").fetchone()
    assert (held, reserved) == ((1, 3), (3,))
