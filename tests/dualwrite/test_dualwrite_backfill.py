"""Backfill: resumable after a stop or a SIGKILL, equal to a fresh copy, safe under writes."""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from dualwrite.backfill import Backfill
from dualwrite.capture import set_capture
from dualwrite.relay import Relay
from migration_plans.control.processes import ManagedProcess, wait_until

pytestmark = [pytest.mark.pg, pytest.mark.slow]


def seed(pair: Any, products: int) -> None:
    set_capture(pair.relays[0].engines["monolith"], "catalog", enabled=False)  # shared phase
    pair.monolith(
        "INSERT INTO catalog_category (name, slug, description) "
        "SELECT 'Cat ' || n, 'cat-' || n, 'd' FROM generate_series(1, 30) AS n"
    )
    pair.monolith(
        "INSERT INTO catalog_product (sku, name, description, price, is_active, category_id, "
        "created_at, updated_at) SELECT 'P-' || n, 'Item ' || n, 'desc ' || n, n * 0.37, "
        "n % 3 <> 0, (SELECT min(id) FROM catalog_category) + n % 30, "
        "now() - n * interval '1 minute', now() FROM generate_series(1, :count) AS n",
        {"count": products},
    )


def checkpoint(pair: Any, table: str) -> dict[str, Any]:
    with pair.relays[0].engines["service"].connect() as conn:
        row = (
            conn.execute(
                text("SELECT * FROM strangler_backfill WHERE table_name = :t"), {"t": table}
            )
            .mappings()
            .first()
        )
    return dict(row) if row else {}


def test_backfill_stopped_half_way_and_resumed_equals_a_fresh_copy(
    pair: Any, fresh_service: Callable[[], str]
) -> None:
    seed(pair, 5000)
    settings = pair.settings()
    first = Backfill(settings, chunk_size=700)
    stopped = first.run(progress=False, max_chunks=4)
    assert not stopped.finished
    assert 0 < checkpoint(pair, "products")["rows_copied"] < 5000
    resumed = Backfill(settings, chunk_size=700).run(progress=False)
    assert resumed.finished and checkpoint(pair, "products")["finished_at"] is not None
    assert pair.rows("service") == pair.rows("monolith")

    url = fresh_service()
    fresh = Backfill(pair.settings(service_url=url), chunk_size=100_000)
    assert fresh.run(progress=False).total == 5030
    fresh.close()
    other = Relay(pair.settings(service_url=url))
    with other.engines["service"].connect() as conn:
        fresh_rows = conn.execute(text("SELECT * FROM products ORDER BY id")).all()
    other.close()
    with pair.relays[0].engines["service"].connect() as conn:
        resumed_rows = conn.execute(text("SELECT * FROM products ORDER BY id")).all()
        next_id = conn.execute(text("SELECT nextval('products_id_seq')")).scalar_one()
    assert resumed_rows == fresh_rows
    top = pair.monolith("SELECT max(id) FROM catalog_product").scalar_one()
    assert next_id > top + 1_000_000


def test_backfill_killed_and_resumed(pair: Any, processes: Callable[..., ManagedProcess]) -> None:
    seed(pair, 3000)
    argv = [
        sys.executable,
        "-m",
        "dualwrite",
        "backfill",
        "catalog",
        "--chunk-size",
        "200",
        "--no-progress",
    ]
    slow = processes([*argv, "--throttle", "0.05"], name="backfill", env=pair.env())
    wait_until(
        lambda: checkpoint(pair, "products").get("rows_copied", 0) >= 600,
        timeout=60,
        what="backfill half-way",
    )
    slow.kill()
    assert checkpoint(pair, "products")["finished_at"] is None
    again = processes(argv, name="backfill-resumed", env=pair.env())
    assert again.popen.wait(timeout=120) == 0, again.log_tail()
    assert "backfill catalog: done" in again.log_tail()
    assert pair.rows("service") == pair.rows("monolith")


def test_backfill_concurrent_with_writes_loses_nothing(
    pair: Any, start_relay: Callable[..., ManagedProcess]
) -> None:
    seed(pair, 3000)
    stop = threading.Event()
    writes = [0]

    def writer() -> None:
        chooser = random.Random(7)
        while not stop.is_set():
            key = chooser.randint(1, 3200)
            action = chooser.random()
            if action < 0.6:
                pair.monolith(
                    "UPDATE catalog_product SET price = price + 1, name = name || '+' "
                    "WHERE id = :id",
                    {"id": key},
                )
            elif action < 0.8:
                pair.monolith("DELETE FROM catalog_product WHERE id = :id", {"id": key})
            else:
                pair.monolith(
                    "INSERT INTO catalog_product (sku, name, description, price, is_active, "
                    "category_id, created_at, updated_at) SELECT 'W-' || :n, 'New', '', 1, "
                    "true, min(id), now(), now() FROM catalog_category",
                    {"n": writes[0]},
                )
            writes[0] += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        start_relay(pair)
        wait_until(lambda: writes[0] >= 20, timeout=30, what="writer under way")
        backfill = Backfill(pair.settings(), chunk_size=250, throttle=0.02)
        before = writes[0]
        result = backfill.run(progress=False)
        backfill.close()
        assert result.finished
        assert writes[0] > before, "writes must overlap the backfill"
    finally:
        stop.set()
        thread.join()
    pair.assert_in_sync(timeout=90)
