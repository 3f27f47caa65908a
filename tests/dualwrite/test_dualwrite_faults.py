"""Faults, each ending with both databases identical and nothing lost (real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from dualwrite import capture
from dualwrite.capture import install_capture, run_statements, uninstall_statements
from dualwrite.engines import relay_engine
from dualwrite.outbox import OutboxSink
from migration_plans.control.processes import ManagedProcess, wait_until
from migration_plans.core.database import libpq_url
from migration_plans.core.settings import PLANS_DIR_ENV, mapping_for
from migration_plans.core.sqlnames import quote_ident
from migration_plans.testing.databases import lock_waiters
from tests.dualwrite.conftest import Pair

pytestmark = [pytest.mark.pg, pytest.mark.e2e, pytest.mark.slow]

PRODUCTS = (
    "INSERT INTO catalog_product (sku, name, description, price, is_active, category_id, "
    "created_at, updated_at) SELECT :prefix || n, 'Item ' || n, '', n * 0.25, true, 1, now(), "
    "now() FROM generate_series(1, :count) AS n"
)


def seed(pair: Any, count: int, prefix: str = "P-") -> None:
    pair.monolith(
        "INSERT INTO catalog_category (id, name, slug, description) VALUES (1, 'All', 'all', '') "
        "ON CONFLICT DO NOTHING"
    )
    pair.monolith(PRODUCTS, {"prefix": prefix, "count": count})


def applied(pair: Any, side: str = "monolith") -> int:
    return pair.outbox_counts(side).get("applied", 0)


def service_event(pair: Any, key: int, row: dict[str, Any] | None, operation: str) -> None:
    """An outbox event written the way the service's write path does (row in service form)."""
    with Session(pair.relays[0].engines["service"]) as session, session.begin():
        OutboxSink(context="catalog").record(
            session,
            table="products",
            operation=operation,
            key=key,
            row=row,
            request_id=f"req-{key}",
        )


def test_relay_sigkilled_mid_batch_loses_nothing(
    pair: Any, start_relay: Callable[..., ManagedProcess]
) -> None:
    seed(pair, 3000)
    relay = start_relay(pair, STRANGLER_RELAY_BATCH_SIZE="200")
    wait_until(lambda: applied(pair) >= 400, timeout=60, what="relay under way")
    relay.kill()
    seed(pair, 200, prefix="Q-")  # written while no relay runs
    pair.monolith("UPDATE catalog_product SET price = price + 1 WHERE id % 7 = 0")
    start_relay(pair, STRANGLER_RELAY_BATCH_SIZE="200")
    pair.assert_in_sync(timeout=90)
    assert len(pair.rows("service")["products"]) == 3200


def test_service_database_unreachable_then_back(
    pair: Any, start_relay: Callable[..., ManagedProcess]
) -> None:
    seed(pair, 10)
    relay = start_relay(pair)
    pair.assert_in_sync(timeout=30)
    pair.set_service_connections(False)
    pair.monolith("UPDATE catalog_product SET name = name || ' (new)' WHERE id <= 5")
    pair.monolith("DELETE FROM catalog_product WHERE id = 10")
    seed(pair, 5, prefix="U-")
    wait_until(
        lambda: "database unavailable" in relay.log_tail(400),
        timeout=30,
        what="relay noticing the outage",
    )
    assert pair.outbox_counts("monolith").get("pending", 0) > 0
    pair.set_service_connections(True)
    pair.assert_in_sync(timeout=60)
    assert relay.alive()


def test_redis_stopped_and_restarted(
    pair: Any,
    own_redis: Any,
    queue_name: str,
    start_relay: Callable[..., ManagedProcess],
    start_worker: Callable[..., ManagedProcess],
) -> None:
    broker = {"STRANGLER_BROKER_URL": own_redis.url, "STRANGLER_RELAY_QUEUE": queue_name}
    start_worker(pair, own_redis.url, queue_name)
    start_relay(pair, mode="celery", **broker)
    seed(pair, 20)
    pair.assert_in_sync(timeout=60)  # every key went through a Celery task
    own_redis.kill()
    pair.monolith("UPDATE catalog_product SET price = price * 2 WHERE id <= 10")
    service_event(pair, 15, None, "delete")
    pair.service("DELETE FROM products WHERE id = 15")
    wait_until(
        lambda: pair.outbox_counts("monolith").get("in_flight", 0) > 0,
        timeout=30,
        what="events handed off while the broker is down",
    )
    own_redis.start()  # an empty broker: tasks queued before the outage are gone too
    pair.assert_in_sync(timeout=90)
    assert 15 not in pair.rows("monolith")["products"]


def test_poison_event_is_retried_with_backoff_then_dead_lettered(
    pair: Any,
    redis_url: str,
    queue_name: str,
    start_relay: Callable[..., ManagedProcess],
    start_worker: Callable[..., ManagedProcess],
) -> None:
    broker = {"STRANGLER_BROKER_URL": redis_url, "STRANGLER_RELAY_QUEUE": queue_name}
    seed(pair, 3)
    start_worker(pair, redis_url, queue_name)
    start_relay(pair, **broker)
    pair.assert_in_sync(timeout=30)
    good = {
        "id": 2,
        "sku": "P-2",
        "title": "Renamed",
        "description": "",
        "price_cents": 50,
        "status": "active",
        "category_id": 1,
        "created_at": "2026-01-01T00:00:00+00:00",
        "updated_at": "2026-01-01T00:00:00+00:00",
    }
    service_event(pair, 1, {**good, "id": 1, "sku": "P-1", "status": "unknown"}, "update")
    service_event(pair, 2, good, "update")
    pair.service(
        "UPDATE products SET title = 'Renamed', price_cents = 50, "
        "created_at = '2026-01-01T00:00:00+00:00', updated_at = created_at WHERE id = 2"
    )
    wait_until(
        lambda: pair.outbox_counts("service").get("dead", 0) == 1,
        timeout=60,
        what="the poison event dead-lettered",
    )
    dead = pair.service("SELECT attempts, last_error, request_id FROM strangler_dead_letter").one()
    assert dead[0] == 3 and "unknown" in dead[1] and dead[2] == "req-1"
    assert pair.rows("monolith")["products"][2]["title"] == "Renamed"
    status = subprocess.run(
        [sys.executable, "-m", "dualwrite", "status", "catalog", "--json"],
        env={**pair.env(), "PATH": "/usr/bin:/bin", PLANS_DIR_ENV: os.environ[PLANS_DIR_ENV]},
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(status.stdout)[0]
    assert report["service"]["dead"] == 1
    assert report["monolith"]["lag_p99_ms"] is not None


CATALOG_TABLES = ("catalog_category", "catalog_product")


def capture_triggers(engine: Engine, tables: tuple[str, ...] = CATALOG_TABLES) -> dict[str, str]:
    """The capture triggers installed on ``tables``: name -> tgenabled."""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT tgname, tgenabled FROM pg_trigger WHERE tgname ~ '^strangler_capture_' "
            "AND tgrelid::regclass::text = ANY(%(tables)s)",
            {"tables": list(tables)},
        ).all()
    return {str(name): str(enabled) for name, enabled in rows}


def drop_capture_triggers(engine: Engine, *tables: str) -> None:
    """Drop the triggers of ``tables`` (their functions stay), as before a first install."""
    statements = [
        statement
        for statement in uninstall_statements("postgresql", [mapping_for("catalog")])
        if statement.startswith("DROP TRIGGER")
        and statement.endswith(tuple(f" ON {quote_ident(t)}" for t in tables))
    ]
    with engine.begin() as conn:
        run_statements(conn.exec_driver_sql, statements)


def disable_trigger(engine: Engine, table: str, trigger: str) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")


@pytest.mark.pg
def test_installing_capture_waits_out_a_live_transaction_and_retries(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    """The trigger DDL meets a monolith transaction holding its table: it gives up its
    lock wait after DDL_LOCK_TIMEOUT (never queueing the application behind it for long),
    retries, and succeeds once the transaction ends."""
    engine = relay_engine(pair.monolith_url, pool_size=1)
    drop_capture_triggers(engine, "catalog_product")  # (installed: nothing would lock)
    holder = psycopg.connect(libpq_url(pair.monolith_url))
    holder.execute(
        "UPDATE catalog_product SET price = price WHERE id = (SELECT min(id) FROM catalog_product)"
    )
    released = threading.Event()

    def release_later() -> None:
        # The installer's first attempts must meet the lock: release only once one failed.
        wait_until(
            lambda: "met the application's locks" in caplog.text,
            timeout=30,
            interval=0.05,
            what="a retried capture install",
        )
        holder.rollback()
        released.set()

    releaser = threading.Thread(target=release_later, daemon=True)
    releaser.start()
    try:
        with caplog.at_level("WARNING", logger="dualwrite.capture"):
            install_capture(engine, [mapping_for("catalog")])
        releaser.join(timeout=30)
        assert released.is_set()
        assert "installing capture on catalog_product met" in caplog.text
        assert len(capture_triggers(engine, ("catalog_product",))) == 3
    finally:
        holder.close()
        engine.dispose()


@pytest.mark.pg
def test_reinstalling_capture_takes_no_table_lock(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    """Triggers installed as wanted: a reinstall (a second advance into dual_write) only
    replaces the functions, so a transaction holding the tables holds nothing up; a
    trigger someone disabled is put back."""
    engine = relay_engine(pair.monolith_url, pool_size=1)
    holder = psycopg.connect(libpq_url(pair.monolith_url))
    try:
        disable_trigger(engine, "catalog_category", "strangler_capture_catalog_category_upd")
        holder.execute("SELECT id FROM catalog_product ORDER BY id LIMIT 1 FOR UPDATE")
        with caplog.at_level("WARNING", logger="dualwrite.capture"):
            install_capture(engine, [mapping_for("catalog")])
        assert "met the application's locks" not in caplog.text
        holder.execute("SELECT 1")  # the holder's transaction lives on
        assert holder.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        triggers = capture_triggers(engine)
        assert len(triggers) == 6 and set(triggers.values()) == {"O"}, triggers
    finally:
        holder.close()
        engine.dispose()


@pytest.mark.pg
def test_installing_capture_cannot_deadlock_an_application_transaction(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An application transaction that wrote a product and then reads the categories
    (as a foreign-key check does) while the trigger DDL runs is never the one aborted.

    A disabled trigger makes the categories' triggers go in again (DROP TRIGGER: an
    ACCESS EXCLUSIVE lock). One DDL transaction for both tables held that lock while it
    waited for the products' (the application's): the application, waiting first, was
    the deadlock's victim. The order is forced: a third session holds the products'
    capture function, so the DDL stops right before the products. The DDL's lock
    timeout is the 1 s it was then (as long as ``deadlock_timeout``): the test is about
    the transactions, not about the short timeout, which would also have saved the
    application here."""
    monkeypatch.setattr(capture, "DDL_LOCK_TIMEOUT", "1s")
    engine = relay_engine(pair.monolith_url, pool_size=2)
    disable_trigger(engine, "catalog_category", "strangler_capture_catalog_category_upd")
    function = "strangler_capture_catalog_product_fn"
    blocker = psycopg.connect(libpq_url(pair.monolith_url))
    application = psycopg.connect(libpq_url(pair.monolith_url))
    failures: list[BaseException] = []

    def install() -> None:
        try:
            install_capture(engine, [mapping_for("catalog")])
        except BaseException as exc:
            failures.append(exc)

    installer = threading.Thread(target=install, daemon=True)
    try:
        blocker.execute("SELECT oid FROM pg_proc WHERE proname = %s FOR UPDATE", (function,))
        seed(pair, 1, prefix="DEADLOCK-")
        application.execute("UPDATE catalog_product SET price = price + 1 WHERE sku = 'DEADLOCK-1'")
        installer.start()
        wait_until(
            lambda: lock_waiters(pair.monolith_url, running=f'FUNCTION "{function}"()') > 0,
            timeout=30,
            interval=0.01,
            what="the capture DDL waiting at the products' function",
        )

        def read_categories() -> None:
            try:
                application.execute("SELECT count(*) FROM catalog_category").fetchone()
                application.commit()
            except BaseException as exc:
                failures.append(exc)

        reader = threading.Thread(target=read_categories, daemon=True)
        reader.start()
        wait_until(
            lambda: (
                not reader.is_alive()
                or lock_waiters(pair.monolith_url, running="SELECT count(*) FROM catalog_category")
                > 0
            ),
            timeout=30,
            interval=0.01,
            what="the application's read done or waiting",
        )
        blocker.rollback()
        reader.join(timeout=30)
        installer.join(timeout=60)
        assert not reader.is_alive() and not installer.is_alive()
        assert failures == []
        assert len(capture_triggers(engine)) == 6
    finally:
        blocker.close()
        application.close()
        engine.dispose()
