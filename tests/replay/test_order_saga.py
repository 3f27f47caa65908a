"""The order saga across three databases: inventory and payments split, orders through the proxy.

Every check reads the databases themselves: the monolith's orders, the inventory
service's stock and reservations, the payments service's payments, and (after reverse
sync) the monolith's copies of both.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from migration_plans.control.processes import wait_until
from migration_plans.core.database import engine as make_engine
from migration_plans.testing import Topology, assert_no_divergence

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.pg, pytest.mark.redis]

NO_SHADOW = "phase replay: no production shadow traffic to measure in a test"
SPLIT = ("inventory", "payments")


@pytest.fixture
def split_shop(phase_replay: Topology) -> Iterator[Topology]:
    """Inventory and payments split (reverse sync on), catalog and orders in the monolith."""
    for context in SPLIT:
        phase_replay.advance(context, force_reason=NO_SHADOW)
        phase_replay.advance(context, force_reason=NO_SHADOW)
        assert phase_replay.phase(context) == "split"
    yield phase_replay


class Databases:
    """SQL on the monolith's and the services' databases of a topology."""

    def __init__(self, topology: Topology) -> None:
        config = topology.config
        self.engines: dict[str, Engine] = {
            "monolith": make_engine(config.monolith_db),
            **{ctx: make_engine(config.service_dbs[ctx]) for ctx in SPLIT},
        }

    def rows(self, where: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        with self.engines[where].connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]

    def close(self) -> None:
        for engine in self.engines.values():
            engine.dispose()


@pytest.fixture
def databases(split_shop: Topology) -> Iterator[Databases]:
    found = Databases(split_shop)
    yield found
    found.close()


def last_order_id(db: Databases) -> int:
    return int(db.rows("monolith", "SELECT coalesce(max(id), 0) FROM orders_order")[0][0])


def stocked_product(client: httpx.Client, units: int, *, skip: set[int] | None = None) -> int:
    """A product whose stock is set so exactly ``units`` can still be reserved."""
    items = client.get("/api/v1/stock/", params={"ordering": "-quantity", "page_size": 50})
    items.raise_for_status()
    taken = skip or set()
    product = next(int(i["product"]) for i in items.json()["results"] if i["product"] not in taken)
    stock = client.get("/api/v1/stock/", params={"product": product}).json()["results"]
    for index, item in enumerate(stock):
        quantity = item["reserved"] + (units if index == 0 else 0)
        answer = client.patch(f"/api/v1/stock/{item['id']}/", json={"quantity": quantity})
        assert answer.status_code == 200, answer.text
    return product


def buy(topology: Topology, product: int, token: str = "tok_visa") -> httpx.Response:
    with topology.client(timeout=60) as client:
        body = {"lines": [{"product": product, "quantity": 1}], "payment_token": token}
        return client.post("/api/v1/orders/", json=body)


def orders_since(db: Databases, first: int) -> dict[int, str]:
    rows = db.rows("monolith", "SELECT id, status FROM orders_order WHERE id > :id", id=first)
    return {int(order): str(status) for order, status in rows}


def service_reserved_units(db: Databases, order_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Per order: (units held, units released) in the inventory service."""
    found: dict[int, tuple[int, int]] = {}
    for order in order_ids:
        rows = db.rows(
            "inventory",
            "SELECT state, coalesce(sum(quantity), 0) FROM reservations "
            "WHERE order_id = :o GROUP BY state",
            o=order,
        )
        by_state = {str(state): int(units) for state, units in rows}
        found[order] = (by_state.get("held", 0), by_state.get("released", 0))
    return found


def service_payments(db: Databases, order_ids: list[int]) -> Counter[tuple[int, str]]:
    rows = db.rows(
        "payments",
        "SELECT order_id, status FROM payments WHERE order_id = ANY(:ids)",
        ids=order_ids,
    )
    return Counter((int(order), str(status)) for order, status in rows)


def available_in_service(db: Databases, product: int) -> list[int]:
    rows = db.rows(
        "inventory", "SELECT on_hand - reserved FROM stock_levels WHERE product_id = :p", p=product
    )
    return [int(units) for (units,) in rows]


def test_twenty_buyers_for_the_last_five_units(split_shop: Topology, databases: Databases) -> None:
    topology, db = split_shop, databases
    with topology.client() as client:
        product = stocked_product(client, 5)
    first = last_order_id(db)
    start = threading.Barrier(20)

    def buyer(_: int) -> httpx.Response:
        start.wait(timeout=30)
        return buy(topology, product)

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(buyer, range(20)))

    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {201: 5, 409: 15}, [a.text for a in answers if a.status_code >= 500]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"insufficient_stock"}
    confirmed = sorted(int(a.json()["id"]) for a in answers if a.status_code == 201)
    assert all(a.json()["status"] == "paid" for a in answers if a.status_code == 201)

    orders = orders_since(db, first)
    assert Counter(orders.values()) == {"paid": 5, "cancelled": 15}
    assert sorted(o for o, s in orders.items() if s == "paid") == confirmed
    assert (
        min(available_in_service(db, product)) == 0 and sum(available_in_service(db, product)) == 0
    )
    reserved = service_reserved_units(db, list(orders))
    assert {o: reserved[o] for o in confirmed} == {o: (1, 0) for o in confirmed}
    assert all(reserved[o] == (0, 0) for o, s in orders.items() if s == "cancelled")
    assert service_payments(db, list(orders)) == Counter({(o, "succeeded"): 1 for o in confirmed})

    # The monolith's copy agrees once reverse sync delivered the services' changes.
    for context in SPLIT:
        topology.wait_drained(context)
        assert_no_divergence(topology, context)
    copies = db.rows(
        "monolith",
        "SELECT r.order_id, sum(r.quantity) FROM inventory_reservation r "
        "WHERE r.order_id > :id AND NOT r.released GROUP BY r.order_id",
        id=first,
    )
    assert sorted((int(o), int(u)) for o, u in copies) == [(o, 1) for o in confirmed]


def test_a_declined_payment_releases_the_stock_and_cancels_the_order(
    split_shop: Topology, databases: Databases
) -> None:
    topology, db = split_shop, databases
    with topology.client() as client:
        product = stocked_product(client, 3)
    before = available_in_service(db, product)
    first = last_order_id(db)

    answer = buy(topology, product, token="tok_declined")

    assert answer.status_code == 402, answer.text
    assert answer.json()["code"] == "payment_failed"
    orders = orders_since(db, first)
    assert list(orders.values()) == ["cancelled"]
    order = next(iter(orders))
    assert service_reserved_units(db, [order]) == {order: (0, 1)}  # reserved, then released
    assert available_in_service(db, product) == before
    assert service_payments(db, [order]) == Counter()
    topology.wait_drained("inventory")
    released = db.rows(
        "monolith", "SELECT released FROM inventory_reservation WHERE order_id = :o", o=order
    )
    assert released == [(True,)]
    assert_no_divergence(topology, "inventory")


class Buyers:
    """Buyers placing one-unit orders in a loop until stopped; answers are kept."""

    def __init__(self, topology: Topology, products: list[int], count: int) -> None:
        self.topology, self.products = topology, products
        self.answers: list[httpx.Response] = []
        self.earlier: list[httpx.Response] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._buy, args=(n,), daemon=True) for n in range(count)
        ]

    def _buy(self, n: int) -> None:
        while not self._stop.is_set():
            try:
                answer = buy(self.topology, self.products[n % len(self.products)])
            except httpx.HTTPError as exc:
                with self._lock:
                    self.errors.append(repr(exc))
                continue
            with self._lock:
                self.answers.append(answer)

    def placed(self) -> int:
        with self._lock:
            return len(self.answers) + len(self.earlier)

    def answered(self, status: int) -> int:
        """Answers with ``status`` since the last :meth:`forget`."""
        with self._lock:
            return sum(1 for answer in self.answers if answer.status_code == status)

    def forget(self) -> None:
        """Start counting answers afresh (the earlier ones are kept for the checks)."""
        with self._lock:
            self.earlier += self.answers
            self.answers = []

    def all_answers(self) -> list[httpx.Response]:
        with self._lock:
            return self.earlier + self.answers

    def __enter__(self) -> Buyers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    try:
        wait_until(condition, timeout=timeout, interval=0.25)
    except TimeoutError:
        raise AssertionError(f"not within {timeout:.0f}s: {what}") from None


def retried_sagas(db: Databases) -> int:
    """Sagas that met a failure and were retried (a fault was felt mid-saga)."""
    rows = db.rows("monolith", "SELECT count(*) FROM strangler_saga WHERE last_error <> ''")
    return int(rows[0][0])


def test_faults_mid_saga_leave_no_order_pending_and_nothing_twice(
    split_shop: Topology, databases: Databases
) -> None:
    topology, db = split_shop, databases
    with topology.client() as client:
        first_product = stocked_product(client, 200)
        products = [first_product, stocked_product(client, 200, skip={first_product})]
    first = last_order_id(db)

    def felt(what: str) -> None:
        retried = retried_sagas(db)
        wait_for(lambda: retried_sagas(db) > retried, f"a saga retried while {what}")

    def outlived(what: str) -> None:
        """An order answered 202: its saga outlived the request and is the worker's now."""
        wait_for(lambda: buyers.answered(202) > 0, f"an order answered 202 while {what}")

    def flowing(what: str) -> None:
        placed = buyers.placed()
        wait_for(lambda: buyers.placed() >= placed + 4, f"orders answered {what}")

    with Buyers(topology, products, count=4) as buyers:
        flowing("before the faults")
        for context in SPLIT:
            buyers.forget()
            with topology.fault("kill_service", context):
                felt(f"{context} is down")
                outlived(f"{context} is down")
            flowing(f"after {context} came back")
        # The worker dies while it holds the retries of sagas waiting for inventory: the
        # sagas whose requests gave up waiting (202) stay pending until it is back.
        with topology.fault("kill_saga_worker"):
            buyers.forget()
            with topology.fault("kill_service", "inventory"):
                outlived("inventory and the saga worker are down")
            flowing("with inventory back and the saga worker still down")
            assert "pending" in orders_since(db, first).values()
        flowing("after the saga worker came back")
    assert not buyers.errors, buyers.errors[:3]
    answers = buyers.all_answers()
    assert {a.status_code for a in answers} <= {201, 202, 409}, [
        a.text for a in answers if a.status_code not in (201, 202, 409)
    ][:3]

    def settled() -> bool:
        statuses = set(orders_since(db, first).values())
        return bool(statuses) and statuses <= {"paid", "cancelled"}

    try:
        wait_for(settled, "every order paid or cancelled after recovery", timeout=180)
    except AssertionError as exc:
        unsettled = db.rows(
            "monolith",
            "SELECT id, key, state, step_name, attempts, lease_owner, lease_until, "
            "next_attempt_at, last_error FROM strangler_saga "
            "WHERE state NOT IN ('completed', 'compensated')",
        )
        raise AssertionError(f"{exc}; sagas not finished: {unsettled}") from None
    orders = orders_since(db, first)
    paid = [o for o, s in orders.items() if s == "paid"]
    cancelled = [o for o, s in orders.items() if s == "cancelled"]
    assert paid, orders
    reserved = service_reserved_units(db, list(orders))
    assert all(reserved[o] == (1, 0) for o in paid), {o: reserved[o] for o in paid}
    assert all(reserved[o][0] == 0 for o in cancelled), {o: reserved[o] for o in cancelled}
    payments = service_payments(db, list(orders))
    assert all(payments[(o, "succeeded")] == 1 for o in paid)
    assert all(payments[(o, "succeeded")] == 0 for o in cancelled)
    assert max(Counter(order for order, _ in payments.elements()).values(), default=0) <= 1
    unfinished = db.rows(
        "monolith",
        "SELECT count(*) FROM strangler_saga WHERE state NOT IN ('completed', 'compensated')",
    )
    assert unfinished == [(0,)]
    for context in SPLIT:
        topology.wait_drained(context)
        assert_no_divergence(topology, context)


def staff_client(topology: Topology) -> httpx.Client:
    """A client logged in as a new staff user (shipping is staff-only)."""
    username, password = f"staff-{uuid.uuid4().hex[:8]}", "staff-password-123"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "legacy_monolith.manage", "createsuperuser", "--no-input"),
            *("--username", username, "--email", f"{username}@example.com"),
        ],
        env={**os.environ, **topology.stack.env(), "DJANGO_SUPERUSER_PASSWORD": password},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with topology.client(auth=False) as anonymous:
        body = {"username": username, "password": password}
        token = anonymous.post("/api/v1/auth/token/", json=body)
    assert token.status_code == 200, token.text
    client = topology.client(auth=False)
    client.headers["Authorization"] = f"Token {token.json()['token']}"
    return client


def on_hand(db: Databases, product: int) -> int:
    rows = db.rows(
        "inventory", "SELECT sum(on_hand) FROM stock_levels WHERE product_id = :p", p=product
    )
    return int(rows[0][0])


def test_cancelling_and_shipping_run_as_sagas_against_the_services(
    split_shop: Topology, databases: Databases
) -> None:
    topology, db = split_shop, databases
    with topology.client() as client:
        product = stocked_product(client, 10)
    cancelled, shipped = (buy(topology, product).json()["id"] for _ in range(2))
    units = on_hand(db, product)

    with topology.client() as client:
        answer = client.post(f"/api/v1/orders/{cancelled}/cancel/")
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "cancelled"
        again = client.post(f"/api/v1/orders/{cancelled}/cancel/")
        assert again.status_code == 409 and again.json()["code"] == "invalid_state"
    assert service_reserved_units(db, [cancelled]) == {cancelled: (0, 1)}
    assert service_payments(db, [cancelled]) == Counter({(cancelled, "refunded"): 1})
    assert on_hand(db, product) == units  # released, not shipped

    with staff_client(topology) as staff:
        answer = staff.post("/api/v1/shipments/", json={"order": shipped, "carrier": "DHL"})
        assert answer.status_code == 201, answer.text
        assert answer.json()["tracking_number"].startswith("DHL")
        again = staff.post("/api/v1/shipments/", json={"order": shipped, "carrier": "DHL"})
        assert again.status_code == 409, again.text
    assert service_reserved_units(db, [shipped]) == {shipped: (0, 1)}  # consumed
    assert on_hand(db, product) == units - 1
    assert orders_since(db, min(cancelled, shipped) - 1) == {
        cancelled: "cancelled",
        shipped: "shipped",
    }
    kinds = db.rows(
        "monolith",
        "SELECT kind, state FROM strangler_saga WHERE subject IN (:a, :b) ORDER BY id",
        a=f"order:{cancelled}",
        b=f"order:{shipped}",
    )
    assert kinds == [
        ("place_order", "completed"),
        ("place_order", "completed"),
        ("cancel_order", "completed"),
        ("ship_order", "completed"),
    ]
    for context in SPLIT:
        topology.wait_drained(context)
        assert_no_divergence(topology, context)
