"""Bulk changes at pipeline speed, on real PostgreSQL: statement-level capture, coalesced
set-based apply with its commit-order fallback, and the partitioned relay (in process, as
real processes killed mid-batch, and spread over a real Celery worker)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import MetaData, Table, event, text
from sqlalchemy.exc import DBAPIError

from dualwrite import setwrites
from dualwrite.backfill import Backfill
from dualwrite.capture import set_capture
from dualwrite.config import Direction
from dualwrite.events import Event, Outcome
from dualwrite.partitions import BUCKET_SQL, Partition, bucket_of
from dualwrite.relay import Relay, relay_lock
from migration_plans.control.processes import wait_until
from migration_plans.core.mapping import TableMapping
from migration_plans.testing.databases import libpq_url
from tests.dualwrite.conftest import REPO_ROOT, Pair
from tests.dualwrite.writes import service_write

pytestmark = pytest.mark.pg

PRODUCT_COLUMNS = "sku, name, description, price, is_active, category_id, created_at, updated_at"


def seed(pair: Pair, products: int) -> None:
    """``products`` products in two categories on both sides (capture off while copying)."""
    relay = pair.relays[0]
    set_capture(relay.engines["monolith"], "catalog", enabled=False)
    pair.monolith(
        "INSERT INTO catalog_category (id, name, slug, description) "
        "VALUES (1, 'One', 'one', ''), (2, 'Two', 'two', '')"
    )
    pair.monolith(
        f"INSERT INTO catalog_product (id, {PRODUCT_COLUMNS}) SELECT n, 'SKU-' || n, "
        "'Product ' || n, '', 1.00, true, 1 + n % 2, now(), now() "
        "FROM generate_series(1, :n) AS n",
        {"n": products},
    )
    Backfill(pair.settings()).run(progress=False)
    set_capture(relay.engines["monolith"], "catalog", enabled=True)


def drain(*relays: Relay) -> None:
    """Apply until no relay finds anything pending in either direction."""
    for _ in range(1000):
        if not any(relay.apply_next(direction) for relay in relays for direction in Direction):
            return
    raise AssertionError("the outboxes did not drain")


def events(pair: Pair) -> list[tuple[str, str]]:
    with pair.relays[0].engines["monolith"].connect() as conn:
        rows = conn.execute(
            text("SELECT aggregate_key, operation FROM strangler_outbox ORDER BY id")
        ).all()
    return [(row[0], row[1]) for row in rows]


def test_a_bulk_update_is_one_trigger_call_one_notify_and_one_event_per_row(pair: Pair) -> None:
    seed(pair, 500)
    with psycopg.connect(libpq_url(pair.monolith_url), autocommit=True) as listener:
        listener.execute("LISTEN strangler_outbox")
        pair.monolith("UPDATE catalog_product SET price = price + 1")
        notices = list(listener.notifies(timeout=1.0, stop_after=10))
    assert [n.payload for n in notices] == ["catalog"]
    captured = events(pair)
    assert len(captured) == 500
    assert {op for _, op in captured} == {"update"}
    assert sorted(int(key) for key, _ in captured) == list(range(1, 501))


def test_statement_capture_keeps_moves_skips_no_ops_and_the_relays_own_writes(pair: Pair) -> None:
    seed(pair, 3)
    pair.monolith("UPDATE catalog_product SET price = price WHERE id = 1")  # no change
    pair.monolith("UPDATE catalog_product SET id = 10 WHERE id = 2")  # key moved
    pair.monolith("DELETE FROM catalog_product WHERE id = 3")
    with pair.relays[0].engines["monolith"].begin() as conn:
        conn.exec_driver_sql("SELECT set_config('strangler.origin', 'relay', true)")
        conn.exec_driver_sql("UPDATE catalog_product SET price = 9 WHERE id = 1")
        conn.exec_driver_sql("UPDATE catalog_product SET price = 1 WHERE id = 1")
    with pair.relays[0].engines["monolith"].begin() as conn:  # two statements, one key
        conn.exec_driver_sql("UPDATE catalog_product SET price = 5 WHERE id = 10")
        conn.exec_driver_sql("UPDATE catalog_product SET price = 6 WHERE id = 10")
    assert events(pair) == [
        ("2", "delete"),
        ("10", "update"),
        ("3", "delete"),
        ("10", "update"),
        ("10", "update"),
    ]
    drain(pair.relays[0])
    pair.assert_in_sync(timeout=5)
    service = pair.rows("service")["products"]
    assert set(service) == {1, 10} and service[10]["price_cents"] == 600


def test_bulk_changes_coalesce_per_key_parents_before_children(pair: Pair) -> None:
    seed(pair, 300)
    pair.monolith("UPDATE catalog_product SET price = price + 1")
    pair.monolith("UPDATE catalog_product SET price = price * 2 WHERE id % 3 = 0")
    pair.monolith("DELETE FROM catalog_product WHERE id % 10 = 0")
    # A new category and products that need it, in one batch: the category goes first.
    pair.monolith(
        "INSERT INTO catalog_category (id, name, slug, description) VALUES (3, 'c', 'c', '')"
    )
    pair.monolith(
        f"INSERT INTO catalog_product (id, {PRODUCT_COLUMNS}) SELECT n, 'NEW-' || n, 'n', '', "
        "2.50, true, 3, now(), now() FROM generate_series(1001, 1100) AS n"
    )
    results = pair.relays[0].apply_next(Direction.MONOLITH_TO_SERVICE)
    assert len(results) == 300 + 100 + 30 + 1 + 100
    assert {r.outcome for r in results} == {Outcome.APPLIED}
    assert pair.relays[0].apply_next(Direction.MONOLITH_TO_SERVICE) == []
    pair.assert_in_sync(timeout=5)


def test_a_coalesced_write_that_breaks_a_constraint_is_written_in_commit_order(pair: Pair) -> None:
    seed(pair, 2)
    # Swap two unique SKUs through a temporary value: each statement is valid, but the
    # final images upserted together collide with the other row's old SKU.
    pair.monolith("UPDATE catalog_product SET sku = 'TMP' WHERE id = 1")
    pair.monolith("UPDATE catalog_product SET sku = 'SKU-1' WHERE id = 2")
    pair.monolith("UPDATE catalog_product SET sku = 'SKU-2' WHERE id = 1")
    results = pair.relays[0].apply_next(Direction.MONOLITH_TO_SERVICE)
    assert [r.outcome for r in results] == [Outcome.APPLIED] * 3
    pair.assert_in_sync(timeout=5)
    assert pair.rows("service")["products"][1]["sku"] == "SKU-2"


def test_partition_buckets_agree_between_python_and_postgresql(pair: Pair) -> None:
    keys = [("products", str(n)) for n in range(200)] + [("categories", "a/b'c")]
    with pair.relays[0].engines["monolith"].connect() as conn:
        for kind, key in keys:
            found = conn.execute(
                text(
                    f"SELECT {BUCKET_SQL} FROM (SELECT :t AS aggregate_type, :k AS aggregate_key) r"
                ),
                {"t": kind, "k": key},
            ).scalar_one()
            assert found == bucket_of((kind, key))
    halves = [Partition(index=i, count=2) for i in range(2)]
    owners = [sum(half.owns(key) for half in halves) for key in keys]
    assert owners == [1] * len(keys)
    assert all(sum(half.owns(key) for key in keys) > 40 for half in halves)


def test_partitions_apply_only_their_own_keys_and_together_all(pair: Pair) -> None:
    seed(pair, 200)
    pair.monolith("UPDATE catalog_product SET price = price + 1")
    halves = [pair.relay(partition=Partition(index=i, count=2)) for i in range(2)]
    first = halves[0].apply_next(Direction.MONOLITH_TO_SERVICE)
    assert first and all(halves[0].settings.partition.owns(r.event.key) for r in first)
    assert halves[0].apply_next(Direction.MONOLITH_TO_SERVICE) == []
    second = halves[1].apply_next(Direction.MONOLITH_TO_SERVICE)
    assert len(first) + len(second) == 200
    pair.assert_in_sync(timeout=5)


# -- the property: any interleaving of both sides' writes and partition passes converges --

KEYS = (1, 2, 3, 4)
Write = tuple[str, str, int, int]  # (side, "upsert" | "delete", key, price in cents)
Pass = tuple[str, int, str]  # ("pass", partition index, direction)

writes = st.tuples(
    st.sampled_from(["monolith", "service"]),
    st.sampled_from(["upsert", "upsert", "delete"]),
    st.sampled_from(KEYS),
    st.integers(min_value=0, max_value=10_000),
)
passes = st.tuples(st.just("pass"), st.sampled_from([0, 1]), st.sampled_from(list(Direction)))


def _write(pair: Pair, side: str, operation: str, key: int, cents: int) -> None:
    if side == "monolith":
        if operation == "delete":
            pair.monolith("DELETE FROM catalog_product WHERE id = :k", {"k": key})
            return
        pair.monolith(
            f"INSERT INTO catalog_product (id, {PRODUCT_COLUMNS}) VALUES (:k, 'SKU-' || :k, "
            "'p', '', :price, true, 1, now(), now()) "
            "ON CONFLICT (id) DO UPDATE SET price = excluded.price",
            {"k": key, "price": cents / 100},
        )
        return
    if operation == "delete":
        service_write(
            pair,
            "DELETE FROM products WHERE id = :k",
            {"k": key},
            table="products",
            key=key,
            operation="delete",
        )
        return
    service_write(
        pair,
        "INSERT INTO products (id, sku, title, description, price_cents, status, category_id, "
        "created_at, updated_at) VALUES (:k, 'SKU-' || :k, 'p', '', :c, 'active', 1, now(), "
        "now()) ON CONFLICT (id) DO UPDATE SET price_cents = excluded.price_cents",
        {"k": key, "c": cents},
        table="products",
        key=key,
        operation="update",
    )


def _reset(pair: Pair) -> None:
    for side in ("monolith", "service"):
        table = "catalog_product" if side == "monolith" else "products"
        with pair.relays[0].engines[side].begin() as conn:
            conn.exec_driver_sql("SELECT set_config('strangler.origin', 'relay', true)")
            conn.exec_driver_sql(f"DELETE FROM {table} WHERE id <= 4")
            conn.exec_driver_sql("DELETE FROM strangler_outbox")
            conn.exec_driver_sql("DELETE FROM strangler_applied_event")


@settings(
    max_examples=int(os.environ.get("STRANGLER_PROPERTY_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(st.one_of(writes, writes, passes), min_size=1, max_size=25))
def test_any_interleaving_of_both_sides_converges_with_batches_and_two_partitions(
    pair: Pair, steps: list[Any]
) -> None:
    if len(pair.relays) == 1:
        seed(pair, 0)
        for index in (0, 1):
            pair.relay(partition=Partition(index, 2), batch_size=2)
    _reset(pair)
    halves = pair.relays[-2:]
    for step in steps:
        if step[0] == "pass":
            halves[step[1]].apply_next(step[2])
        else:
            _write(pair, *step)
    drain(*halves)
    assert pair.rows("monolith") == pair.rows("service")


# -- real processes ------------------------------------------------------------------------


def _relay_argv(*extra: str) -> list[str]:
    return [sys.executable, "-m", "dualwrite", "relay", "catalog", "--log-level", "INFO", *extra]


def test_partitioned_relay_killed_mid_batch_loses_nothing_and_applies_nothing_twice(
    pair: Pair, processes: Any
) -> None:
    seed(pair, 20_000)
    env = pair.env(STRANGLER_RELAY_BATCH_SIZE="500", STRANGLER_LIVE_PHASE="off")
    for _ in range(3):  # three generations of every row: a replayed old one would show
        pair.monolith("UPDATE catalog_product SET price = price + 1")
    relay = processes(_relay_argv("--partitions", "2"), name="relay-partitions", env=env)
    wait_until(
        lambda: 0 < pair.outbox_counts("monolith").get("applied", 0) < 50_000,
        timeout=60,
        interval=0.02,
        what="the partitions halfway through the backlog",
    )
    os.killpg(relay.popen.pid, signal.SIGKILL)  # the parent and both partitions at once
    relay.popen.wait(10)
    left = pair.outbox_counts("monolith")
    assert left.get("pending", 0) > 0, f"the kill came too late to be mid-backlog: {left}"
    processes(_relay_argv("--partitions", "2"), name="relay-partitions-2", env=env)
    pair.assert_in_sync(timeout=120)
    service = pair.rows("service")["products"]
    assert {row["price_cents"] for row in service.values()} == {400}


def test_partitions_are_refused_on_sqlite_with_the_reason(tmp_path: Any) -> None:
    env = {
        **os.environ,
        "CATALOG_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
        "STRANGLER_MONOLITH_DATABASE_URL": f"sqlite:///{tmp_path / 'monolith.sqlite3'}",
        "STRANGLER_PLANS_DIR": str(REPO_ROOT / "migration_plans" / "templates"),
    }
    done = subprocess.run(
        _relay_argv("--partitions", "2"),
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    message = " ".join(re.sub("[│╭╮╰╯─]", " ", done.stderr).split())  # unwrap typer's box
    assert "relay partitions need PostgreSQL; the monolith database is sqlite" in message


def test_celery_mode_spreads_the_partitions_over_the_workers(
    pair: Pair, start_relay: Any, start_worker: Any, redis_url: str, queue_name: str
) -> None:
    seed(pair, 3000)
    worker = start_worker(pair, redis_url, queue_name)
    start_relay(
        pair, mode="celery", STRANGLER_RELAY_PARTITIONS="2", STRANGLER_RELAY_BATCH_SIZE="500"
    )
    pair.monolith("UPDATE catalog_product SET price = price + 1")
    pair.assert_in_sync(timeout=120)
    log = worker.log_tail(2000)
    # Batches went out per partition (at least one task each), never key by key.
    assert log.count("Task dualwrite.apply_partition[") >= 2
    assert "dualwrite.apply_key[" not in log


# A pair whose every field has an exact SQL form: the relay upserts its monolith row
# images into the service without converting them in Python.
SQL_MAPPED_PAIR = {
    "name": "things",
    "monolith_table": "m_things",
    "service_table": "sql_mapped_things",
    "key": {"monolith": "id", "service": "id"},
    "fields": [
        {"monolith": "name", "service": "title"},
        {"monolith": "note", "service": "note", "empty_string": "null"},
        {"monolith": "price", "service": "cents", "transform": "decimal_cents", "scale": 2},
        {
            "monolith": "active",
            "service": "status",
            "transform": "bool_enum",
            "true_value": "on",
            "false_value": "o%ff",
        },
        {"monolith": "made", "service": "made", "transform": "timestamp", "precision": "s"},
        {"monolith": "seen", "service": "seen", "transform": "timestamp", "precision": "ms"},
        {"monolith": "kept", "service": "kept", "transform": "timestamp"},
    ],
}


def _sql_mapped(pair: Pair) -> tuple[TableMapping, Any, str]:
    """The pair above, its service table created, and its SQL-converting upsert."""
    mapping = TableMapping.model_validate(SQL_MAPPED_PAIR)
    engine = pair.relays[0].engines["service"]
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE sql_mapped_things (id bigint PRIMARY KEY, title varchar(20), "
            "note text, cents integer, status text, made timestamptz, seen timestamptz, "
            "kept timestamptz)"
        )
    table = Table("sql_mapped_things", MetaData(), autoload_with=engine)
    statement = setwrites.mapped_upsert(mapping, table)
    assert statement is not None
    return mapping, engine, statement


def test_sql_converted_upserts_write_what_the_python_transforms_write(pair: Pair) -> None:
    mapping, engine, statement = _sql_mapped(pair)
    nulls = dict.fromkeys(("name", "note", "price", "active", "made", "seen", "kept"))
    images = [
        {"id": 1, **nulls},
        {
            "id": 2,
            "name": "A 'quoted' name",
            "note": "",
            "price": 12.5,
            "active": True,
            "made": "2026-12-07T01:02:03.999999+02:00",
            "seen": "2026-12-07T01:02:03.456789",
            "kept": "2026-12-07T01:02:03.123456+00:00",
        },
        {
            "id": 3,
            "name": "",
            "note": "x",
            "price": "1.50",
            "active": False,
            "made": "2026-01-01",
            "seen": "1999-12-31T23:59:59.9999Z",
            "kept": None,
        },
        {"id": 4, **nulls, "price": 7, "note": " "},
    ]
    texts = [json.dumps(image) for image in images]
    with engine.begin() as conn:
        setwrites.upsert_images(conn, statement, texts)
        setwrites.upsert_images(conn, statement, texts)  # again: every row conflicts
        rows = {
            row.id: dict(row._mapping)
            for row in conn.execute(text("SELECT * FROM sql_mapped_things"))
        }
    expected = {
        image["id"]: mapping.to_service(json.loads(text_, parse_float=Decimal))
        for image, text_ in zip(images, texts, strict=True)
    }
    assert rows == expected


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("price", 1.005),  # more places than the scale
        ("price", True),
        ("active", "false"),  # a string, which Python's bool() reads as true
        ("active", 0),
        ("made", "infinity"),
        ("seen", "now"),
        ("kept", 12345),
    ],
)
def test_values_the_sql_forms_cannot_map_exactly_fail_the_statement(
    pair: Pair, column: str, value: Any
) -> None:
    _, engine, statement = _sql_mapped(pair)
    with pytest.raises(DBAPIError, match="invalid input syntax for type"), engine.begin() as conn:
        setwrites.upsert_images(conn, statement, [json.dumps({"id": 1, column: value})])


def test_pairs_with_transforms_without_an_exact_sql_form_are_converted_in_python(
    pair: Pair,
) -> None:
    _, engine, _ = _sql_mapped(pair)
    table = Table("sql_mapped_things", MetaData(), autoload_with=engine)
    enum = {"monolith": "name", "service": "title", "transform": "enum_map", "values": {"a": "b"}}
    mapping = TableMapping.model_validate({**SQL_MAPPED_PAIR, "name": "enum", "fields": [enum]})
    assert setwrites.mapped_upsert(mapping, table) is None


def test_both_sides_version_guards_leave_half_of_each_page_free(pair: Pair) -> None:
    # Monolith: Django migration 0007; service: Alembic revision 0004. Moving a guard up
    # is then a HOT update (no new index entry).
    for side in ("monolith", "service"):
        with pair.relays[0].engines[side].connect() as conn:
            options = conn.exec_driver_sql(
                "SELECT reloptions FROM pg_class WHERE relname = 'strangler_applied_event'"
            ).scalar_one()
        assert options == ["fillfactor=50"], side


def test_both_sides_outboxes_index_only_what_the_relay_and_reconciler_look_up(pair: Pair) -> None:
    # Monolith: Django migration 0008; service: Alembic revision 0005 dropped the unique
    # index on event_id, which every captured row and every mark had to maintain.
    for side in ("monolith", "service"):
        with pair.relays[0].engines[side].connect() as conn:
            definitions = conn.exec_driver_sql(
                "SELECT regexp_replace(indexdef, '^.* USING ', '') FROM pg_indexes "
                "WHERE tablename = 'strangler_outbox' ORDER BY 1"
            ).scalars()
            assert list(definitions) == [
                "btree (aggregate_type, aggregate_key, id)",
                "btree (id)",
                "btree (status, id)",
            ], side


def test_a_partitions_batch_is_its_oldest_events_read_by_walking_the_status_index(
    pair: Pair,
) -> None:
    """After a bulk change (statistics refreshed, as the relay does on a full batch), with
    a partition's condition the planner cannot estimate: the batch read walks the
    (status, id) index and stops at the limit (no sort of the pending events), and the
    events it keeps are the partition's oldest."""
    seed(pair, 20_000)
    engine = pair.relays[0].engines["monolith"]
    pair.monolith("UPDATE catalog_product SET price = price + 1")
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE strangler_outbox")
    partition = Partition(index=0, count=2)
    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        statements.append((statement, params))

    with engine.connect() as conn:
        event.listen(conn, "before_cursor_execute", record)
        rows = setwrites.pending_events(
            conn, "catalog", partition.sql_condition(), [], 100, Event.COLUMNS
        )
        event.remove(conn, "before_cursor_execute", record)
        pending = conn.exec_driver_sql(
            "SELECT id, aggregate_type, aggregate_key FROM strangler_outbox "
            "WHERE status = 'pending' ORDER BY id"
        ).all()
        statement, params = statements[-1]
        plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", params).scalar()
    owned = [row[0] for row in pending if partition.owns((row[1], row[2]))]
    assert len(owned) > 5000
    assert [row[0] for row in rows] == owned[:100]
    nodes = list(_plan_nodes(plan[0]["Plan"]))
    assert "Sort" not in {node["Node Type"] for node in nodes}
    assert "ix_strangler_outbox_status_id" in {node.get("Index Name") for node in nodes}


def _plan_nodes(node: dict[str, Any]) -> Any:
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


def test_an_idle_service_lane_takes_no_relay_lock_and_a_busy_one_waits_for_it(
    pair: Pair,
) -> None:
    # The service-to-monolith lane looks at its outbox before it locks the monolith's
    # buckets: idle, it neither waits for nor holds up a monolith batch being applied.
    seed(pair, 2)
    relay = pair.relays[0]
    idle: list[Any] = []
    with relay.engines["monolith"].begin() as held:
        relay_lock(held, "catalog")
        lane = _service_lane_pass(relay, idle)
        lane.join(timeout=30)
        assert not lane.is_alive(), "the idle lane waited for the relay lock"
    assert idle == [[]]

    service_write(
        pair,
        "UPDATE products SET price_cents = 777 WHERE id = :k",
        {"k": 1},
        table="products",
        key=1,
        operation="update",
    )
    applied: list[Any] = []
    with relay.engines["monolith"].begin() as held:
        relay_lock(held, "catalog")
        lane = _service_lane_pass(relay, applied)
        wait_until(lambda: _advisory_waiters(pair) > 0, timeout=30, what="the busy lane waiting")
        assert not applied
    lane.join(timeout=30)
    assert [result.outcome for result in applied[0]] == [Outcome.APPLIED]
    price = pair.monolith("SELECT price FROM catalog_product WHERE id = 1").scalar_one()
    assert price == Decimal("7.77")


def _service_lane_pass(relay: Relay, results: list[Any]) -> threading.Thread:
    """One service-to-monolith pass of ``relay`` in a thread; what it applied goes to ``results``."""
    lane = threading.Thread(
        target=lambda: results.append(relay.apply_next(Direction.SERVICE_TO_MONOLITH))
    )
    lane.start()
    return lane


def _advisory_waiters(pair: Pair) -> int:
    with psycopg.connect(libpq_url(pair.monolith_url)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event = 'advisory'"
        ).fetchone()
    return int(row[0]) if row else 0


def test_a_relay_leaves_an_outbox_another_one_is_analyzing_to_it(pair: Pair) -> None:
    # Partitions read one outbox: while one analyzes it, another neither analyzes it
    # again nor waits for it.
    tables = ("strangler_outbox", "strangler_applied_event")
    engine = pair.relays[0].engines["monolith"]
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        assert _analyzed_at(conn) is None
        lock = {"lock": setwrites.analyze_lock(tables)}
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as busy:
            busy.exec_driver_sql("SELECT pg_advisory_lock(hashtextextended(%(lock)s, 0))", lock)
            assert not setwrites.analyze_unless_busy(conn, tables)
            assert _analyzed_at(conn) is None
            busy.exec_driver_sql("SELECT pg_advisory_unlock(hashtextextended(%(lock)s, 0))", lock)
        assert setwrites.analyze_unless_busy(conn, tables)
        first = _analyzed_at(conn)
        assert first is not None
        assert setwrites.analyze_unless_busy(conn, tables)
        assert _analyzed_at(conn) > first
        held = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        ).scalar_one()
        assert held == 0


def _analyzed_at(conn: Any) -> Any:
    return conn.exec_driver_sql(
        "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'strangler_outbox'"
    ).scalar_one()
