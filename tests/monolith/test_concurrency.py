"""Concurrency over real HTTP, on PostgreSQL row locks: 20 concurrent orders for the last 5
units, and two reserves of one order at once (one set of reservations)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest

from migration_plans.control.processes import ManagedProcess, free_port, wait_until
from migration_plans.testing.databases import lock_waiters

from .conftest import (
    REPO_ROOT,
    STAFF_PASSWORD,
    STAFF_USERNAME,
    MonolithDatabases,
    base_url,
    monolith_env,
    start_monolith,
    unique,
)

pytestmark = [pytest.mark.pg, pytest.mark.e2e]

BUYERS = 20
UNITS = 5


@pytest.fixture
def pg_monolith(
    request: pytest.FixtureRequest, monolith_databases: MonolithDatabases, tmp_path: Path
) -> Iterator[tuple[ManagedProcess, str]]:
    """A fresh PostgreSQL database and a two-worker monolith serving it."""
    database_url = monolith_databases.fresh(request, "postgresql")
    process = start_monolith(database_url, tmp_path / "logs", workers=2, name="monolith-race")
    try:
        yield process, database_url
    finally:
        process.stop()


@pytest.fixture
def pg_threaded_monolith(
    request: pytest.FixtureRequest, monolith_databases: MonolithDatabases, tmp_path: Path
) -> Iterator[tuple[ManagedProcess, str]]:
    """A fresh PostgreSQL database and a gunicorn monolith serving requests in threads.

    One uvicorn worker runs Django's sync views one at a time; gunicorn's gthread worker
    lets two requests wait on the same row lock at once.
    """
    database_url = monolith_databases.fresh(request, "postgresql")
    port = free_port()
    argv = [sys.executable, "-m", "legacy_monolith.cli", "serve", "--port", str(port)]
    argv += ["--server", "gunicorn", "--workers", "1", "--threads", "4"]
    process = ManagedProcess.start(
        argv,
        name="monolith-threads",
        health_url=f"http://127.0.0.1:{port}/healthz",
        env=monolith_env(database_url),
        cwd=REPO_ROOT,
        log_dir=tmp_path / "logs",
        timeout=60,
    )
    try:
        yield process, database_url
    finally:
        process.stop()


def _staff_client(url: str) -> httpx.Client:
    credentials = {"username": STAFF_USERNAME, "password": STAFF_PASSWORD}
    token = httpx.post(f"{url}/api/v1/auth/token/", json=credentials, timeout=60).json()["token"]
    return httpx.Client(base_url=url, headers={"Authorization": f"Token {token}"}, timeout=60)


def _stock_up(client: httpx.Client) -> int:
    category = client.post("/api/v1/categories/", json={"name": "c", "slug": "c"}).json()
    product = client.post(
        "/api/v1/products/",
        json={
            "sku": unique("RACE"),
            "name": "Last ones",
            "price": "9.99",
            "category": category["id"],
        },
    ).json()
    warehouse = client.post("/api/v1/warehouses/", json={"code": "W1", "name": "Main"}).json()
    stock = {"product": product["id"], "warehouse": warehouse["id"], "quantity": UNITS}
    assert client.post("/api/v1/stock/", json=stock).status_code == 201
    return int(product["id"])


def _watch_min_available(database_url: str, stop: threading.Event, seen: list[int]) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        while not stop.is_set():
            row = conn.execute(
                "SELECT min(quantity - reserved) FROM inventory_stockitem"
            ).fetchone()
            seen.append(int(row[0]) if row and row[0] is not None else 0)
            stop.wait(0.005)


def _buy(url: str, token: str, product_id: int, barrier: threading.Barrier) -> httpx.Response:
    body = {"lines": [{"product": product_id, "quantity": 1}], "payment_token": "tok_visa"}
    with httpx.Client(base_url=url, headers={"Authorization": f"Token {token}"}, timeout=60) as c:
        c.get("/healthz")  # connect before the race starts
        barrier.wait(timeout=30)
        return c.post("/api/v1/orders/", json=body)


def test_twenty_buyers_for_five_units(pg_monolith: tuple[ManagedProcess, str]) -> None:
    process, database_url = pg_monolith
    url = base_url(process)
    with httpx.Client(base_url=url, timeout=30) as client:
        credentials = {"username": STAFF_USERNAME, "password": STAFF_PASSWORD}
        token = client.post("/api/v1/auth/token/", json=credentials).json()["token"]
        client.headers["Authorization"] = f"Token {token}"
        product_id = _stock_up(client)

    stop, seen = threading.Event(), list[int]()
    watcher = threading.Thread(target=_watch_min_available, args=(database_url, stop, seen))
    watcher.start()
    barrier = threading.Barrier(BUYERS)
    try:
        with ThreadPoolExecutor(BUYERS) as pool:
            futures = [pool.submit(_buy, url, token, product_id, barrier) for _ in range(BUYERS)]
            responses = [future.result() for future in futures]
    finally:
        stop.set()
        watcher.join()

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] * UNITS + [409] * (BUYERS - UNITS), [r.text for r in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"insufficient_stock"}
    assert seen and min(seen) >= 0
    _assert_no_half_written_orders(database_url, product_id)


def _assert_no_half_written_orders(database_url: str, product_id: int) -> None:
    with psycopg.connect(database_url) as conn:
        quantity, reserved = conn.execute(
            "SELECT quantity, reserved FROM inventory_stockitem WHERE product_id = %s", [product_id]
        ).fetchone() or (None, None)
        assert (quantity, reserved) == (UNITS, UNITS)
        orders = conn.execute(
            """
            SELECT o.id, o.status, o.total,
                   (SELECT coalesce(sum(l.quantity), 0) FROM orders_orderline l WHERE l.order_id = o.id),
                   (SELECT coalesce(sum(r.quantity), 0) FROM inventory_reservation r
                     WHERE r.order_id = o.id AND NOT r.released),
                   (SELECT count(*) FROM payments_payment p
                     WHERE p.order_id = o.id AND p.amount = o.total AND p.status = 'succeeded')
            FROM orders_order o
            """
        ).fetchall()
        assert len(orders) == UNITS
        for _order_id, status, total, lines, held, payments in orders:
            assert (status, str(total), lines, held, payments) == ("paid", "9.99", 1, 1, 1)
        orphans = conn.execute(
            "SELECT count(*) FROM inventory_reservation r "
            "WHERE NOT EXISTS (SELECT 1 FROM orders_order o WHERE o.id = r.order_id)"
        ).fetchone()
        assert orphans == (0,)


def test_two_reserves_of_one_order_at_once_reserve_once(
    pg_threaded_monolith: tuple[ManagedProcess, str],
) -> None:
    process, database_url = pg_threaded_monolith
    with _staff_client(base_url(process)) as client:
        product_id = _stock_up(client)
    body = {"order_id": 77, "lines": [{"product": product_id, "quantity": 2}]}

    def reserve() -> httpx.Response:
        with _staff_client(base_url(process)) as client:
            return client.post("/api/v1/stock/reserve/", json=body)

    with psycopg.connect(database_url) as holder, ThreadPoolExecutor(2) as pool:
        holder.execute(
            "SELECT id FROM inventory_stockitem WHERE product_id = %s FOR UPDATE", [product_id]
        )
        futures = [pool.submit(reserve) for _ in range(2)]
        wait_until(
            lambda: lock_waiters(database_url) == 2,
            timeout=30,
            what="both reserves to wait for the stock row lock",
        )
        holder.commit()
        responses = [future.result() for future in futures]

    assert sorted(r.status_code for r in responses) == [200, 201], [r.text for r in responses]
    assert responses[0].json() == responses[1].json()
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT sum(r.quantity), count(*), min(s.reserved) FROM inventory_reservation r"
            " JOIN inventory_stockitem s ON s.id = r.stock_item_id WHERE r.order_id = 77"
        ).fetchone()
    assert rows == (2, 1, 2)
