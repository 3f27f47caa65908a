"""Conflicts are data, not crashes: an event the other side refuses is retried, then
dead-lettered with its reason; its key waits, every other key goes on, and the
reconciler reports the key as divergent with that reason (issue #16, item 1).

The conflict: the catalog service deletes a product that the monolith's stock rows
still reference. The monolith's foreign key is deferred (Django's), so the relay's
delete fails at COMMIT, on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import pytest
from psycopg import errors as pg_errors
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.orm import Session

from dualwrite.config import Direction
from dualwrite.exceptions import ApplyFailed, is_unavailable
from dualwrite.loop import RelayLoop
from dualwrite.outbox import OutboxSink
from dualwrite.status import collect_status
from migration_plans.control.processes import ManagedProcess, wait_until
from migration_plans.core.settings import PLANS_DIR_ENV, mapping_for
from reconciler.diff import DivergenceKind
from reconciler.report import Verdict
from reconciler.runner import reconcile
from tests.dualwrite.conftest import Pair

PRODUCT = (
    "INSERT INTO catalog_product (id, sku, name, description, price, is_active, category_id, "
    "created_at, updated_at) VALUES (:id, :sku, 'Item', '', 10, :yes, 1, "
    "'2026-01-01 00:00:00+00', '2026-01-01 00:00:00+00')"
)


def seed(pair: Pair) -> None:
    """Category 1, products 1-3, and a stock row of product 1 (inventory: monolith only)."""
    pair.monolith(
        "INSERT INTO catalog_category (id, name, slug, description) VALUES (1, 'A', 'a', '')"
    )
    for key in (1, 2, 3):
        pair.monolith(PRODUCT, {"id": key, "sku": f"P-{key}", "yes": True})
    pair.monolith("INSERT INTO inventory_warehouse (id, code, name) VALUES (1, 'W1', 'Main')")
    pair.monolith(
        "INSERT INTO inventory_stockitem (id, product_id, warehouse_id, quantity, reserved, "
        "updated_at) VALUES (1, 1, 1, 5, 0, '2026-01-01 00:00:00+00')"
    )


def service_write(pair: Pair, key: int, operation: str, price_cents: int = 0) -> None:
    """What the service's write path does: the row change and its event, one transaction."""
    with Session(pair.relays[0].engines["service"]) as session, session.begin():
        if operation == "delete":
            session.execute(text("DELETE FROM products WHERE id = :id"), {"id": key})
            row = None
        else:
            session.execute(
                text("UPDATE products SET price_cents = :p WHERE id = :id"),
                {"p": price_cents, "id": key},
            )
            found = session.execute(text("SELECT * FROM products WHERE id = :id"), {"id": key})
            row = dict(found.mappings().one())
        OutboxSink(context="catalog").record(
            session, table="products", operation=operation, key=key, row=row, request_id=f"r-{key}"
        )


def recreate_event(pair: Pair, *, key: int, like: int) -> None:
    """An event of the service re-creating product ``key`` (a copy of ``like``'s row)."""
    with Session(pair.relays[0].engines["service"]) as session, session.begin():
        found = session.execute(text("SELECT * FROM products WHERE id = :id"), {"id": like})
        row = {**found.mappings().one(), "id": key, "sku": f"P-{key}"}
        OutboxSink(context="catalog").record(
            session, table="products", operation="insert", key=key, row=row, request_id="r-new"
        )


def monolith_price(pair: Pair, key: int) -> Any:
    return pair.monolith("SELECT price FROM catalog_product WHERE id = :id", {"id": key}).scalar()


def dead_reason(pair: Pair) -> str:
    rows = pair.service("SELECT aggregate_key, last_error FROM strangler_dead_letter").all()
    assert [row[0] for row in rows] == ["1"]
    return str(rows[0][1])


def assert_reported_divergent(pair: Pair) -> None:
    """The service deleted key 1, the monolith kept it: divergent, with the dead letter's reason."""
    report = reconcile(mapping_for("catalog"), pair.monolith_url, pair.service_url)
    products = report.table("products")
    assert report.verdict is Verdict.DIVERGENT and products.verdict is Verdict.DIVERGENT
    [divergence] = products.divergences
    assert divergence.key == 1 and divergence.kind is DivergenceKind.MISSING_IN_SERVICE
    assert not divergence.in_flight
    assert divergence.reason is not None
    assert "dead" in divergence.reason and "foreign key" in divergence.reason.lower()


def settle_in_process(pair: Pair) -> RelayLoop:
    """Run the relay loop in this process (no broker: retries run where the sweep finds them)."""
    relay = pair.relays[0]
    loop = RelayLoop(relay, dispatcher=lambda *args, **kwargs: True)
    loop.run_once()
    for _ in range(relay.settings.max_attempts):
        with suppress(ApplyFailed):
            relay.retry_key(Direction.SERVICE_TO_MONOLITH, "products", "1")
    loop.run_once()
    return loop


@pytest.mark.parametrize(
    "error",
    [pg_errors.SerializationFailure, pg_errors.DeadlockDetected, pg_errors.ForeignKeyViolation],
)
def test_a_failed_transaction_counts_toward_the_dead_letter(error: type[Exception]) -> None:
    wrapped = sa_exc.OperationalError("COMMIT", {}, error("refused"))
    assert not is_unavailable(wrapped)


@pytest.mark.parametrize("error", [pg_errors.AdminShutdown, pg_errors.ConnectionFailure])
def test_an_unreachable_database_is_retried_without_counting(error: type[Exception]) -> None:
    assert is_unavailable(sa_exc.OperationalError("SELECT 1", {}, error("gone")))


def test_sqlite_relay_enforces_foreign_keys(sqlite_pair: Pair) -> None:
    for side in ("monolith", "service"):
        with sqlite_pair.relays[0].engines[side].connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_sqlite_refused_delete_is_dead_lettered_and_other_keys_go_on(sqlite_pair: Pair) -> None:
    pair = sqlite_pair
    seed(pair)
    pair.relays[0].apply_pending(Direction.MONOLITH_TO_SERVICE)
    # One batch: innocent changes before and after the refused delete, one of its own key.
    service_write(pair, 2, "update", price_cents=1234)
    service_write(pair, 1, "update", price_cents=2222)
    service_write(pair, 1, "delete")
    service_write(pair, 3, "update", price_cents=4321)
    settle_in_process(pair)
    assert float(monolith_price(pair, 2)) == 12.34
    assert float(monolith_price(pair, 3)) == 43.21
    assert float(monolith_price(pair, 1)) == 22.22  # the key's change before the delete
    assert "foreign key" in dead_reason(pair).lower()
    # The stock row still has its product: nothing orphaned.
    assert pair.monolith("SELECT count(*) FROM catalog_product WHERE id = 1").scalar() == 1
    # A later event of the dead key waits behind it, and status says so; others still go on.
    recreate_event(pair, key=1, like=2)
    service_write(pair, 2, "update", price_cents=555)
    RelayLoop(pair.relays[0], dispatcher=lambda *args, **kwargs: True).run_once()
    assert float(monolith_price(pair, 2)) == 5.55
    status = collect_status(pair.relays[0])
    assert status.service.dead == 1 and status.service.pending == 1
    [blocked] = status.service.blocked
    assert (blocked.aggregate_type, blocked.aggregate_key) == ("products", "1")
    assert blocked.status == "dead" and blocked.waiting == 1
    assert "foreign key" in blocked.reason.lower()
    assert_reported_divergent(pair)


def test_sqlite_a_long_pending_event_is_divergent_not_in_flight(sqlite_pair: Pair) -> None:
    pair = sqlite_pair
    seed(pair)
    pair.relays[0].apply_pending(Direction.MONOLITH_TO_SERVICE)
    service_write(pair, 2, "update", price_cents=777)  # never relayed
    fresh = reconcile(mapping_for("catalog"), pair.monolith_url, pair.service_url)
    assert fresh.verdict is Verdict.CLEAN and fresh.table("products").in_flight == 1
    pair.service("UPDATE strangler_outbox SET created_at = '2026-01-01 00:00:00'")
    stuck = reconcile(mapping_for("catalog"), pair.monolith_url, pair.service_url)
    [divergence] = stuck.table("products").divergences
    assert stuck.verdict is Verdict.DIVERGENT and not divergence.in_flight
    assert divergence.reason is not None and "pending since" in divergence.reason


@pytest.mark.pg
@pytest.mark.e2e
@pytest.mark.slow
def test_pg_refused_delete_is_dead_lettered_and_the_relay_keeps_going(
    pair: Pair, start_relay: Callable[..., ManagedProcess]
) -> None:
    seed(pair)
    relay = start_relay(pair)
    wait_until(
        lambda: len(pair.rows("service")["products"]) == 3, timeout=30, what="products copied"
    )
    service_write(pair, 1, "delete")
    service_write(pair, 2, "update", price_cents=1234)
    wait_until(
        lambda: monolith_price(pair, 2) is not None and float(monolith_price(pair, 2)) == 12.34,
        timeout=30,
        what="the later price change applied",
    )
    wait_until(
        lambda: pair.outbox_counts("service").get("dead", 0) == 1,
        timeout=60,
        what="the refused delete dead-lettered",
    )
    assert relay.alive()
    assert "foreign key" in dead_reason(pair).lower()
    assert pair.monolith("SELECT count(*) FROM catalog_product WHERE id = 1").scalar() == 1
    service_write(pair, 3, "update", price_cents=999)  # still relayed after the dead letter
    wait_until(
        lambda: float(monolith_price(pair, 3)) == 9.99, timeout=30, what="relay still working"
    )
    status = subprocess.run(
        [sys.executable, "-m", "dualwrite", "status", "catalog", "--json"],
        env={**pair.env(), "PATH": "/usr/bin:/bin", PLANS_DIR_ENV: os.environ[PLANS_DIR_ENV]},
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(status.stdout)[0]
    assert report["service"]["dead"] == 1
    assert [b["aggregate_key"] for b in report["service"]["blocked"]] == ["1"]
    assert relay.alive()
    assert_reported_divergent(pair)
