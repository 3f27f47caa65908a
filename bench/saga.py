"""Order saga benchmark: placing orders in one monolith transaction against the saga, and faults.

One stack on PostgreSQL (the default: fresh databases on ``STRANGLER_PG_URL``'s server,
dropped afterwards; ``--embedded``: SQLite files), 1 proxy and 1 process per service,
the monolith on gunicorn threads with its saga worker, seeded as ``strangler demo``
seeds it. Every order is ``POST /api/v1/orders/`` through the proxy as the seeded
customer, one unit of one product, ``tok_visa``; the products ordered get plenty of
stock first (``PATCH /api/v1/stock/{id}/``: the monolith in shared, the service in split).

- ``shared``: inventory and payments in shared; an order is one database transaction in
  the monolith (the peer of this run). Closed loop: ``--orders`` orders one after the
  other (c=1: p50/p99), then ``--concurrency`` buyers for ``--duration`` seconds (orders
  answered 201 per second, p50/p99); answers counted by status.
- ``split``: inventory and payments advanced twice each (forced, called in-process like
  ``migration_plans.testing.topology`` does), the same measurements: each order is now
  a saga (order PENDING in the monolith, reserve in the inventory service, charge in the
  payments service, order PAID). ``ratios``: split / shared.
- ``faults``: in split, ``--concurrency`` buyers, ``--scarce-attempts`` of whose orders
  (spread over the fault timeline) want the last ``--scarce-units`` units of one product,
  the others plenty-stocked products, while every inventory replica is SIGKILLed for
  ``--down`` seconds and restarted, then every payments replica, then inventory again
  with the saga worker killed too (restarted a few seconds after inventory is back).
  The buyers stop once the saga worker is back; then, until no order is pending and no
  saga active (``--deadline``), the three databases are read: ``oversold`` (units held
  on the scarce product beyond its stock + stock levels with on_hand - reserved < 0 +
  paid orders not holding exactly their units), ``stuck_pending``, ``double_charged``
  (orders with more than one payment), ``double_reserved`` (orders holding more units
  than they ordered), the answers seen and ``settle_s`` (last recovery to settled).

Prints one JSON document. Run one benchmark at a time (they share 2 cores):

    flock /tmp/strangler-bench.lock .venv/bin/python bench/saga.py
    flock /tmp/strangler-bench.lock .venv/bin/python bench/saga.py --embedded --orders 50

The stack lives under ``var/bench-saga/`` (emptied at each run; kept afterwards for its
logs). About 2.5 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import httpx
from sqlalchemy import Engine, text

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.cutover import (  # noqa: E402
    backend_description,
    fresh_stack,
    git_head,
    latency_figures,
    log_in,
    pg_databases,
)
from migration_plans.control import transitions  # noqa: E402
from migration_plans.control.demo import SEED  # noqa: E402
from migration_plans.control.stack import Stack, StackConfig  # noqa: E402
from migration_plans.core import database  # noqa: E402
from migration_plans.core.control_db import control_engine  # noqa: E402
from migration_plans.core.database import sqlalchemy_url  # noqa: E402
from migration_plans.testing.databases import (  # noqa: E402
    drop_database,
    pg_admin_url,
)
from migration_plans.testing.faults import Faults  # noqa: E402

SPLIT = ("inventory", "payments")
REPLICAS = 1
ACTOR = "bench-saga"
REASON = "bench: no shadow traffic or gates measured in a benchmark"
MONOLITH_SERVER, MONOLITH_WORKERS = "gunicorn", 2
REQUEST_TIMEOUT = 60.0
PRODUCTS = 40  # plenty-stocked active products the load orders (the seed has inactive ones)
PLENTY = 100_000  # units each of them can still be reserved
SETTLED = ("paid", "cancelled")
ACTIVE_SAGAS = ("running", "compensating")


# -- the load (closed loop: each buyer sends its next order when the last was answered) -----


class Sample(NamedTuple):
    """One order: sent and answered (monotonic s), the status (0: no answer), the product."""

    sent: float
    done: float
    status: int
    product: int
    error: str

    @property
    def latency_ms(self) -> float:
        return (self.done - self.sent) * 1000


class Buyers:
    """``count`` buyers ordering in a loop until :meth:`stop` (or ``orders`` were sent).

    ``pick(n)`` chooses the product of the buyers' ``n``-th order.
    """

    def __init__(
        self,
        proxy: str,
        token: str,
        count: int,
        pick: Callable[[int], int],
        orders: int | None = None,
    ) -> None:
        self.proxy, self.token, self.pick, self.orders = proxy, token, pick, orders
        self.samples: list[Sample] = []
        self._sent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._buy, daemon=True) for _ in range(count)]

    def _next(self) -> int | None:
        with self._lock:
            if self._stop.is_set() or (self.orders is not None and self._sent >= self.orders):
                return None
            self._sent += 1
            return self._sent - 1

    def _buy(self) -> None:
        headers = {"Authorization": f"Token {self.token}"}
        with httpx.Client(
            base_url=self.proxy, headers=headers, timeout=REQUEST_TIMEOUT, trust_env=False
        ) as client:
            while (n := self._next()) is not None:
                self.samples.append(order(client, self.pick(n)))

    def start(self) -> Buyers:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        return self.join()

    def join(self) -> list[Sample]:
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT + 10)
        return list(self.samples)


def order(client: httpx.Client, product: int) -> Sample:
    body = {"lines": [{"product": product, "quantity": 1}], "payment_token": "tok_visa"}
    sent = time.monotonic()
    status, error = 0, ""
    try:
        answer = client.post("/api/v1/orders/", json=body)
        status = answer.status_code
        if status >= 400:
            error = _code(answer)
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:200]
    return Sample(sent, time.monotonic(), status, product, error)


def _code(answer: httpx.Response) -> str:
    with contextlib.suppress(ValueError, AttributeError):
        return str(answer.json().get("code", ""))
    return answer.text[:80]


def latency(samples: list[Sample]) -> dict[str, Any]:
    return latency_figures([s.latency_ms for s in samples])


def statuses(samples: list[Sample]) -> dict[str, int]:
    counts = Counter(f"{s.status or 'no answer'} {s.error}".strip() for s in samples)
    return dict(counts.most_common())


# -- one phase: sequential latency, then throughput at concurrency ------------------------


@dataclass
class Settings:
    orders: int
    warmup: int
    concurrency: int
    duration: float
    scarce_units: int
    scarce_attempts: int
    down: float
    gap: float
    deadline: float
    postgres: bool


def measure(proxy: str, token: str, products: list[int], settings: Settings) -> dict[str, Any]:
    """c=1 latency over ``settings.orders`` orders, then c=``concurrency`` for ``duration`` s."""
    rng = random.Random(7)

    def pick(_: int) -> int:
        return rng.choice(products)

    Buyers(proxy, token, 1, pick, orders=settings.warmup).start().join()
    sequential = Buyers(proxy, token, 1, pick, orders=settings.orders).start().join()
    buyers = Buyers(proxy, token, settings.concurrency, pick).start()
    started = time.monotonic()
    time.sleep(settings.duration)
    concurrent = buyers.stop()
    window = [s for s in concurrent if s.done <= started + settings.duration]
    return {
        "c1": {**latency(sequential), "statuses": statuses(sequential)},
        f"c{settings.concurrency}": {
            "orders_per_s": round(sum(s.status == 201 for s in window) / settings.duration, 1),
            "answered_per_s": round(len(window) / settings.duration, 1),
            **latency(concurrent),
            "statuses": statuses(concurrent),
        },
    }


def set_available(client: httpx.Client, product: int, units: int) -> None:
    """Stock of ``product`` set so exactly ``units`` can still be reserved (first warehouse)."""
    stock = client.get("/api/v1/stock/", params={"product": product})
    stock.raise_for_status()
    for index, item in enumerate(stock.json()["results"]):
        quantity = item["reserved"] + (units if index == 0 else 0)
        client.patch(f"/api/v1/stock/{item['id']}/", json={"quantity": quantity}).raise_for_status()


def restock(proxy: str, token: str, products: list[int], units: int) -> None:
    headers = {"Authorization": f"Token {token}"}
    with httpx.Client(base_url=proxy, headers=headers, timeout=30, trust_env=False) as client:
        for product in products:
            set_available(client, product, units)


# -- faults in split ----------------------------------------------------------------------


class ScarcePick:
    """Attempt ``i`` on the scarce product is due ``i * spread / attempts`` s after start;
    a buyer takes a due attempt, otherwise a plenty-stocked product."""

    def __init__(self, scarce: int, products: list[int], attempts: int, spread: float) -> None:
        self.scarce, self.products = scarce, products
        self.attempts, self.spread = attempts, spread
        self.started = time.monotonic()
        self.taken = 0
        self._lock = threading.Lock()
        self._rng = random.Random(11)

    def __call__(self, _: int) -> int:
        with self._lock:
            due = self.started + self.taken * self.spread / self.attempts
            if self.taken < self.attempts and time.monotonic() >= due:
                self.taken += 1
                return self.scarce
            return self._rng.choice(self.products)


def fault_timeline(faults: Faults, settings: Settings) -> list[dict[str, Any]]:
    """Inventory down, payments down, inventory and the saga worker down; what happened when."""
    origin = time.monotonic()
    events: list[dict[str, Any]] = []

    def mark(what: str) -> None:
        events.append({"at_s": round(time.monotonic() - origin, 1), "event": what})

    time.sleep(settings.gap)
    for context in SPLIT:
        mark(f"kill {context} (every replica)")
        with faults.inject("kill_service", context):
            time.sleep(settings.down)
        mark(f"{context} restarted and healthy")
        time.sleep(settings.gap)
    mark("kill inventory and the saga worker")
    with faults.inject("kill_saga_worker"):
        with faults.inject("kill_service", "inventory"):
            time.sleep(settings.down)
        mark("inventory restarted and healthy (saga worker still down)")
        time.sleep(settings.gap)
    mark("saga worker restarted")
    return events


class Databases:
    """SQL on the monolith's and the split services' databases."""

    def __init__(self, config: StackConfig) -> None:
        self.engines: dict[str, Engine] = {
            "monolith": database.engine(config.monolith_db),
            **{ctx: database.engine(config.service_dbs[ctx]) for ctx in SPLIT},
        }

    def rows(self, where: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        with self.engines[where].connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]

    def count(self, where: str, sql: str, **params: Any) -> int:
        return int(self.rows(where, sql, **params)[0][0])

    def close(self) -> None:
        for engine in self.engines.values():
            engine.dispose()


def unsettled(db: Databases, first: int) -> tuple[int, int]:
    """(orders pending, sagas running or compensating) since order ``first``."""
    pending = db.count(
        "monolith",
        "SELECT count(*) FROM orders_order WHERE id > :f AND status NOT IN ('paid', 'cancelled')",
        f=first,
    )
    active = db.count(
        "monolith",
        "SELECT count(*) FROM strangler_saga WHERE state IN ('running', 'compensating')",
    )
    return pending, active


def wait_settled(db: Databases, first: int, deadline: float) -> tuple[bool, float]:
    """Poll until nothing is pending (``deadline`` s at most): (settled, seconds waited)."""
    started = time.monotonic()
    while unsettled(db, first) != (0, 0):
        if time.monotonic() - started > deadline:
            return False, time.monotonic() - started
        time.sleep(0.25)
    return True, time.monotonic() - started


def audit(db: Databases, first: int, scarce: int, allowed: int) -> dict[str, Any]:
    """What the three databases say about the orders since ``first``."""
    orders = {
        int(o): str(s)
        for o, s in db.rows(
            "monolith", "SELECT id, status FROM orders_order WHERE id > :f", f=first
        )
    }
    ordered = {
        int(o): int(u)
        for o, u in db.rows(
            "monolith",
            "SELECT order_id, sum(quantity) FROM orders_orderline WHERE order_id > :f "
            "GROUP BY order_id",
            f=first,
        )
    }
    held = {
        int(o): int(u)
        for o, u in db.rows(
            "inventory",
            "SELECT order_id, sum(quantity) FROM reservations "
            "WHERE order_id > :f AND state = 'held' GROUP BY order_id",
            f=first,
        )
    }
    scarce_held = db.count(
        "inventory",
        "SELECT coalesce(sum(r.quantity), 0) FROM reservations r "
        "JOIN stock_levels s ON s.id = r.stock_level_id "
        "WHERE s.product_id = :p AND r.order_id > :f AND r.state = 'held'",
        p=scarce,
        f=first,
    )
    negative = db.count("inventory", "SELECT count(*) FROM stock_levels WHERE on_hand < reserved")
    payments = Counter(
        {
            int(o): int(n)
            for o, n in db.rows(
                "payments",
                "SELECT order_id, count(*) FROM payments WHERE order_id > :f GROUP BY order_id",
                f=first,
            )
        }
    )
    charged = {
        int(o)
        for (o,) in db.rows(
            "payments",
            "SELECT order_id FROM payments WHERE order_id > :f AND status = 'succeeded'",
            f=first,
        )
    }
    paid = [o for o, s in orders.items() if s == "paid"]
    cancelled = [o for o, s in orders.items() if s == "cancelled"]
    paid_wrong_hold = sum(held.get(o, 0) != ordered.get(o) for o in paid)
    sagas = db.rows(
        "monolith", "SELECT state, count(*) FROM strangler_saga GROUP BY state ORDER BY state"
    )
    return {
        "oversold": max(0, scarce_held - allowed) + negative + paid_wrong_hold,
        "oversold_parts": {
            "scarce_units_held_beyond_stock": max(0, scarce_held - allowed),
            "stock_levels_below_zero": negative,
            "paid_orders_not_holding_their_units": paid_wrong_hold,
        },
        "stuck_pending": sum(s not in SETTLED for s in orders.values()),
        "double_charged": sum(n > 1 for n in payments.values()),
        "double_reserved": sum(held.get(o, 0) > ordered.get(o, 0) for o in orders),
        "paid_without_charge": sum(o not in charged for o in paid),
        "cancelled_still_charged": sum(o in charged for o in cancelled),
        "cancelled_still_holding_units": sum(held.get(o, 0) > 0 for o in cancelled),
        "scarce_product": {"id": scarce, "units": allowed, "units_held": scarce_held},
        "orders": dict(Counter(orders.values()).most_common()),
        "sagas_by_state": {str(state): int(n) for state, n in sagas},
        "sagas_retried": db.count(
            "monolith", "SELECT count(*) FROM strangler_saga WHERE last_error <> ''"
        ),
    }


def run_faults(
    stack: Stack, token: str, products: list[int], scarce: int, settings: Settings
) -> dict[str, Any]:
    """Buyers through the fault timeline, then the databases once everything settled."""
    proxy = stack.config.proxy_url
    restock(proxy, token, [scarce], settings.scarce_units)
    db = Databases(stack.config)
    try:
        first = db.count("monolith", "SELECT coalesce(max(id), 0) FROM orders_order")
        spread = 3 * (settings.down + settings.gap) + settings.gap
        pick = ScarcePick(scarce, products, settings.scarce_attempts, spread)
        buyers = Buyers(proxy, token, settings.concurrency, pick).start()
        faults = Faults(stack)
        try:
            events = fault_timeline(faults, settings)
        finally:
            faults.recover_all()
            recovered = time.monotonic()
            samples = buyers.stop()
        settled, waited = wait_settled(db, first, settings.deadline)
        pending, active = unsettled(db, first)
        found = audit(db, first, scarce, settings.scarce_units)
    finally:
        db.close()
    return {
        "oversold": found.pop("oversold"),
        "stuck_pending": found.pop("stuck_pending"),
        "double_charged": found.pop("double_charged"),
        "double_reserved": found.pop("double_reserved"),
        "answers": statuses(samples),
        "answered_202": sum(s.status == 202 for s in samples),
        "orders_sent": len(samples),
        "scarce_attempts": sum(s.product == scarce for s in samples),
        "scarce_answers": statuses([s for s in samples if s.product == scarce]),
        "latency": latency(samples),
        "settled": settled,
        "settle_s": round(time.monotonic() - recovered, 1) if settled else None,
        "waited_s": round(waited, 1),
        "left_unsettled": {"orders_pending": pending, "sagas_active": active},
        **found,
        "timeline": events,
    }


# -- the stack ------------------------------------------------------------------------------


def active_products(config: StackConfig, count: int) -> list[int]:
    """The first ``count`` products the monolith sells (an inactive one answers 409)."""
    engine = database.engine(config.monolith_db)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id FROM catalog_product WHERE is_active ORDER BY id LIMIT :n"),
                {"n": count},
            )
            return [int(i) for (i,) in rows]
    finally:
        engine.dispose()


def split(stack: Stack) -> dict[str, float]:
    """Inventory and payments shared -> dual_write -> split (forced); seconds per context."""
    control = control_engine(sqlalchemy_url(stack.config.control_db))
    environment = transitions.Environment(
        plans_dir=stack.config.plans_dir,
        routes_path=stack.config.routes_path,
        control=control,
        run_steps=True,
    )
    took = {}
    with stack.environ():
        for context in SPLIT:
            started = time.monotonic()
            for _ in range(2):
                transitions.advance(environment, context, actor=ACTOR, force=True, reason=REASON)
            took[context] = round(time.monotonic() - started, 1)
    phases = {context: stack.plans()[context].phase.value for context in SPLIT}
    if set(phases.values()) != {"split"}:
        raise RuntimeError(f"not split after two advances: {phases}")
    return took


def run(var_dir: Path, settings: Settings) -> dict[str, Any]:
    created: list[str] = []
    try:
        databases = pg_databases(created, "saga") if settings.postgres else {}
        stack = fresh_stack(
            var_dir,
            bench="saga",
            databases=databases,
            replicas=REPLICAS,
            monolith_server=MONOLITH_SERVER,
            monolith_workers=MONOLITH_WORKERS,
        )
        return run_stack(stack, settings)
    finally:
        for name in created:
            drop_database(pg_admin_url(), name)


def run_stack(stack: Stack, settings: Settings) -> dict[str, Any]:
    """Start ``stack``; shared, then split, then the faults; the figures."""
    try:
        prepared = time.monotonic()
        stack.prepare(services=[])
        stack.run_cli("monolith", "seed", *(f"--{name}={value}" for name, value in SEED.items()))
        stack.start()
        started_s = time.monotonic() - prepared
        *products, scarce = active_products(stack.config, PRODUCTS + 1)
        proxy = stack.config.proxy_url
        token = log_in(proxy)
        restock(proxy, token, products, PLENTY)
        shared = measure(proxy, token, products, settings)
        split_s = split(stack)
        restock(proxy, token, products, PLENTY)
        in_split = measure(proxy, token, products, settings)
        faults = run_faults(stack, token, products, scarce, settings)
        dead = stack.dead()
    finally:
        stack.stop()
    return {
        "shared": shared,
        "split": in_split,
        "faults": faults,
        "advance_to_split_s": split_s,
        "processes_exited_on_their_own": dead,
        "stack_start_s": round(started_s, 1),
        "log_dir": str(stack.config.log_dir),
    }


def ratios(shared: dict[str, Any], split: dict[str, Any], concurrency: int) -> dict[str, Any]:
    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a and b else None

    wide = f"c{concurrency}"
    return {
        "p50_c1": ratio(split["c1"].get("p50_ms"), shared["c1"].get("p50_ms")),
        "p99_c1": ratio(split["c1"].get("p99_ms"), shared["c1"].get("p99_ms")),
        f"orders_per_s_{wide}": ratio(split[wide]["orders_per_s"], shared[wide]["orders_per_s"]),
        f"p50_{wide}": ratio(split[wide].get("p50_ms"), shared[wide].get("p50_ms")),
        f"p99_{wide}": ratio(split[wide].get("p99_ms"), shared[wide].get("p99_ms")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", type=int, default=200, help="sequential orders (c=1)")
    parser.add_argument("--warmup", type=int, default=20, help="orders sent first, not counted")
    parser.add_argument("--concurrency", type=int, default=16, help="buyers at once")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds at concurrency")
    parser.add_argument("--scarce-units", type=int, default=40, help="last units of one product")
    parser.add_argument("--scarce-attempts", type=int, default=120, help="orders for them")
    parser.add_argument("--down", type=float, default=6.0, help="seconds a killed process is down")
    parser.add_argument("--gap", type=float, default=3.0, help="seconds between faults")
    parser.add_argument("--deadline", type=float, default=180.0, help="seconds to settle")
    parser.add_argument(
        "--embedded", action="store_true", help="SQLite files instead of PostgreSQL"
    )
    parser.add_argument("--var-dir", type=Path, default=REPO / "var" / "bench-saga")
    args = parser.parse_args()
    settings = Settings(
        args.orders,
        args.warmup,
        args.concurrency,
        args.duration,
        args.scarce_units,
        args.scarce_attempts,
        args.down,
        args.gap,
        args.deadline,
        postgres=not args.embedded,
    )
    figures: dict[str, Any] = {
        "benchmark": "saga",
        "setup": {
            "backend": backend_description(settings.postgres),
            "replicas": {"proxies": REPLICAS, "per_service": REPLICAS},
            "monolith": f"{MONOLITH_SERVER}, {MONOLITH_WORKERS} gthread workers, saga worker",
            "load": {
                "closed_loop": True,
                "order": "1 unit of 1 product, tok_visa, through the proxy",
                "products": PRODUCTS,
                "sequential_orders": settings.orders,
                "warmup_orders": settings.warmup,
                "concurrency": settings.concurrency,
                "duration_s": settings.duration,
                "timeout_s": REQUEST_TIMEOUT,
            },
            "faults": {
                "scarce_units": settings.scarce_units,
                "scarce_attempts": settings.scarce_attempts,
                "down_s": settings.down,
                "gap_s": settings.gap,
                "deadline_s": settings.deadline,
            },
            "seed": SEED,
            "peer": "shared: the order as one monolith transaction, in the same run",
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "commit": git_head(),
            "at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        },
    }
    figures.update(run(args.var_dir, settings))
    figures["ratios"] = ratios(figures["shared"], figures["split"], settings.concurrency)
    figures["goals"] = {
        "oversold_0": figures["faults"]["oversold"] == 0,
        "stuck_pending_0": figures["faults"]["stuck_pending"] == 0,
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
