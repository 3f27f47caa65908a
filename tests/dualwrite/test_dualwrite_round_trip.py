"""Round trips in both directions on real PostgreSQL databases (Django- and Alembic-migrated)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from dualwrite.capture import set_capture
from dualwrite.config import Direction
from dualwrite.events import Outcome
from dualwrite.inline import InlineRelay, start_inline_relay
from dualwrite.loop import RelayLoop
from migration_plans.control.processes import wait_until
from tests.dualwrite.writes import service_write

pytestmark = pytest.mark.pg


def relay_all(pair: Any) -> None:
    relay = pair.relays[0]
    for _ in range(100):
        done = [relay.apply_pending(direction) for direction in Direction]
        if not any(done):
            return
    raise AssertionError("outbox did not drain")


def test_monolith_orm_bulk_and_raw_sql_writes_reach_the_service(
    pair: Any, django_ops: Callable[..., dict[str, Any]]
) -> None:
    done = django_ops(
        pair.monolith_url,
        "seed",
        "save_update",
        "bulk_create",
        "bulk_update",
        "raw_sql",
        "delete",
        "atomic_mix",
    )
    assert done["bulk_update"] == 20
    counts = pair.outbox_counts("monolith")
    # 2 categories + 2 products + 1 save + 20 bulk_create + 20 bulk update + raw (11 + 1)
    # + 2 deletes + 2 in the atomic block
    assert counts == {"pending": 2 + 2 + 1 + 20 + 20 + 12 + 2 + 2}
    relay_all(pair)
    pair.assert_in_sync(timeout=5)
    service = pair.rows("service")
    assert {row["sku"] for row in service["products"].values()} >= {"T-1", "G-1", "B-1", "B-20"}
    assert service["products"][done["seed"]["hammer"]]["title"] == "Claw hammer"
    assert all(
        row["status"] == "archived"
        for row in service["products"].values()
        if row["sku"].startswith("B-")
    )
    assert pair.outbox_counts("service") == {}, "applied monolith changes were captured again"


def test_service_writes_reach_the_monolith_and_are_not_captured_back(pair: Any) -> None:
    pair.monolith(
        "INSERT INTO catalog_category (id, name, slug, description) "
        "VALUES (1, 'Tools', 'tools', '')"
    )
    relay_all(pair)
    insert = (
        "INSERT INTO products (id, sku, title, description, price_cents, status, "
        "category_id, created_at, updated_at) VALUES (:id, :sku, 'Saw', '', 1299, "
        "'active', 1, now(), now())"
    )
    for key in (5001, 5002):
        service_write(
            pair,
            insert,
            {"id": key, "sku": f"S-{key}"},
            table="products",
            key=key,
            operation="insert",
        )
    service_write(
        pair,
        "UPDATE products SET price_cents = 1550, status = 'archived' WHERE id = 5001",
        {},
        table="products",
        key=5001,
        operation="update",
    )
    service_write(
        pair,
        "DELETE FROM products WHERE id = 5002",
        {},
        table="products",
        key=5002,
        operation="delete",
    )
    before = pair.outbox_counts("monolith")
    relay_all(pair)
    pair.assert_in_sync(timeout=5)
    monolith = pair.monolith("SELECT price, is_active FROM catalog_product WHERE id = 5001").one()
    assert (str(monolith[0]), monolith[1]) == ("15.50", False)
    assert pair.outbox_counts("monolith") == before, "relay writes must not be captured"


def test_redelivered_and_out_of_order_events_change_nothing(pair: Any) -> None:
    relay = pair.relays[0]
    pair.monolith(
        "INSERT INTO catalog_category (id, name, slug, description) VALUES (7, 'A', 'a', 'v1')"
    )
    pair.monolith("UPDATE catalog_category SET description = 'v2' WHERE id = 7")
    pair.monolith("UPDATE catalog_category SET description = 'v3' WHERE id = 7")
    with relay.engines["monolith"].connect() as conn:
        events = relay._events(conn)
    first, second, third = events
    # The newest event arrives first: its predecessors are applied before it, in order.
    applied = relay.apply(Direction.MONOLITH_TO_SERVICE, [third])
    assert [r.event.id for r in applied] == [first.id, second.id, third.id]
    # The same events delivered again (e.g. a Celery retry and the loop): no change.
    pair.monolith("UPDATE strangler_outbox SET status = 'pending'")
    again = relay.apply(Direction.MONOLITH_TO_SERVICE, [second])
    assert {r.outcome for r in again} == {Outcome.DUPLICATE}
    again = relay.apply(Direction.MONOLITH_TO_SERVICE, [first, third])
    assert {r.outcome for r in again} == {Outcome.DUPLICATE}
    assert pair.rows("service")["categories"][7]["description"] == "v3"
    pair.assert_in_sync(timeout=5)


def test_source_of_truth_wins_a_conflict_on_one_row(pair: Any) -> None:
    pair.monolith(
        "INSERT INTO catalog_category (id, name, slug, description) "
        "VALUES (3, 'C', 'c', 'original')"
    )
    relay_all(pair)
    # Both sides change the same row before either change is relayed.
    pair.monolith("UPDATE catalog_category SET description = 'monolith' WHERE id = 3")
    service_write(
        pair,
        "UPDATE categories SET description = 'service' WHERE id = 3",
        {},
        table="categories",
        key=3,
        operation="update",
    )
    relay = pair.relays[0]
    results = relay.apply_pending(Direction.SERVICE_TO_MONOLITH)
    assert [r.outcome for r in results] == [Outcome.SUPERSEDED]
    relay_all(pair)
    pair.assert_in_sync(timeout=5)
    assert pair.rows("service")["categories"][3]["description"] == "monolith"


def test_events_carry_the_request_id(
    pair: Any, django_ops: Callable[..., dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    django_ops(pair.monolith_url, "seed", "request_id")
    tagged = pair.monolith(
        "SELECT request_id FROM strangler_outbox WHERE payload LIKE '%tagged%'"
    ).scalar_one()
    assert tagged == "req-django-42"
    caplog.set_level("INFO", logger="dualwrite")
    relay_all(pair)
    service_write(
        pair,
        "UPDATE categories SET description = 'x' WHERE id = 1",
        {},
        table="categories",
        key=1,
        operation="update",
        request_id="req-svc-7",
    )
    relay_all(pair)
    lines = {
        (record.request_id, record.getMessage().split(" ")[0])  # type: ignore[attr-defined]
        for record in caplog.records
        if record.name == "dualwrite.relay"
    }
    assert ("req-django-42", "monolith_to_service") in lines
    assert ("req-svc-7", "service_to_monolith") in lines
    payload = pair.monolith("SELECT payload FROM strangler_outbox ORDER BY id LIMIT 1").scalar_one()
    assert json.loads(payload)["slug"] == "tools"


def test_capture_off_records_nothing(pair: Any) -> None:

    set_capture(pair.relays[0].engines["monolith"], "catalog", enabled=False)
    pair.monolith("INSERT INTO catalog_category (name, slug, description) VALUES ('x', 'x', '')")
    assert pair.outbox_counts("monolith") == {}


def test_inline_relay_applies_service_writes_right_after_commit(pair: Any) -> None:

    pair.monolith(
        "INSERT INTO catalog_category (id, name, slug, description) VALUES (4, 'D', 'd', 'before')"
    )
    relay_all(pair)
    inline = InlineRelay(pair.relay()).start()
    try:
        service_write(
            pair,
            "UPDATE categories SET description = 'after' WHERE id = 4",
            {},
            table="categories",
            key=4,
            operation="update",
        )
        wait_until(
            lambda: pair.rows("monolith")["categories"][4]["description"] == "after",
            timeout=10,
            what="the inline relay",
        )
    finally:
        inline.stop()
    pair.assert_in_sync(timeout=5)


def test_relay_loop_wakes_on_notify_not_on_its_poll_interval(
    pair: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both outboxes NOTIFY on commit: with a 60 s poll interval, events still apply at once."""
    import threading

    relay = pair.relay(poll_interval=60.0)
    passes: dict[Direction, int] = {direction: 0 for direction in Direction}
    apply_next = relay.apply_next

    def counted(direction: Direction) -> Any:
        try:
            return apply_next(direction)
        finally:
            passes[direction] += 1

    monkeypatch.setattr(relay, "apply_next", counted)
    stop = threading.Event()
    thread = threading.Thread(target=RelayLoop(relay).run, args=(stop,))
    thread.start()
    try:
        # Each lane LISTENs, then makes a first pass over the empty outboxes, then
        # waits 60 s unless woken: from here on only a NOTIFY can get events applied.
        wait_until(lambda: all(passes.values()), timeout=10, what="the lanes' first pass")
        pair.monolith(
            "INSERT INTO catalog_category (id, name, slug, description) "
            "VALUES (7, 'N', 'n', 'woken')"
        )
        wait_until(
            lambda: 7 in pair.rows("service")["categories"], timeout=5, what="monolith -> service"
        )
        service_write(
            pair,
            "UPDATE categories SET description = 'woken too' WHERE id = 7",
            {},
            table="categories",
            key=7,
            operation="update",
        )
        wait_until(
            lambda: pair.rows("monolith")["categories"][7]["description"] == "woken too",
            timeout=5,
            what="service -> monolith",
        )
    finally:
        stop.set()
        for side in (pair.monolith, pair.service):  # wake the lanes so they see the stop
            side("SELECT pg_notify('strangler_outbox', 'catalog')")
        thread.join(timeout=30)
    assert not thread.is_alive()
    pair.assert_in_sync(timeout=5)


def test_inline_relay_leaves_postgresql_to_the_notified_relay_loop(pair: Any) -> None:

    assert start_inline_relay(pair.settings()) is None
