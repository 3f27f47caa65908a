"""Cut-over benchmark (issue 14): live transitions against the pinned restart way, under load.

Two stacks, one after the other, on the embedded default (SQLite files, kombu's
SQLAlchemy transport: no servers; ``--postgres`` or ``STRANGLER_BENCH_PG=1``: fresh
databases on ``STRANGLER_PG_URL``'s server, dropped afterwards), each with 2 proxies and 2 processes per service
(``StackConfig.embedded(..., replicas=2)``), the monolith seeded as ``strangler demo``
seeds it. A load process sends a steady open-loop load through BOTH proxies
(alternating): ``--writes`` price edits per second (``PATCH /api/v1/products/{id}/``
as the seeded customer, each product edited by one request at a time, so "the last
acknowledged edit" is well defined), ``--reads`` product reads per second (detail
and list pages) and ``--orders`` orders per second. Each request starts on schedule
whether or not earlier ones finished, and its latency counts from that schedule, so
a stall shows as latency. It runs in its own process: the transitions run in this
one and would otherwise steal the load's interpreter.

Each stack: a ``--steady`` window (after ``--warmup``), then the catalog journey
shared -> dual_write (advance, forced: no shadow traffic) -> split (advance, forced:
gates) -> dual_write (rollback) -> shared (rollback), called in-process like
``migration_plans.testing.topology`` does.

- ``live``: ``live_phase=True``; services, relays and proxies follow the published
  phase: the transition call is all there is.
- ``restart_baseline``: ``live_phase=False`` (every process pinned to its phase, as
  before the live phase). Each move is made as ``advance``/``rollback`` made it then
  (the same steps, no fence drain: :func:`pinned_transition` says why), then what the
  operator did: ``stack.restart_context("catalog")``, ``stack.restart_relay_worker()``
  and ``POST /_strangler/reload`` on every proxy.

Per transition, over its window (from the call to ``--settle`` seconds after the last
step returned; a request counts when its lifetime overlaps the window):
``failed_requests`` (5xx, transport error, timeout), ``fence_hold_ms`` (client side:
price edits sent while the published phase was fenced, their latency minus the steady
write p50 floored at 0, p50/p99; ``control_plane_ms`` is the cut-over's own ``fence_held_ms``),
``held_write_added_latency_ms.max`` (any price edit of the window), ``read_p99_ratio``
(window read p99 / steady read p99) and ``duration_s``. At the end, with the load
stopped, ``lost_writes``: acknowledged price edits whose product does not hold the
last acknowledged price in the source of truth of the final phase, plus acknowledged
orders missing from the monolith. Every failed request is listed with its proxy,
status, error code, request id and the log lines of the stack that name it.

The load: 100 price edits/s and 200 reads/s (issue 14), plus 2 orders/s. In shared
every catalog write and the reads' primary answers come from the monolith; one
uvicorn process of it saturates one core at 115 to 225 requests/s on this machine,
so the stacks run it as production would, on gunicorn with 2 gthread workers
(``StackConfig.monolith_server``/``monolith_workers``). ``steady.saturated`` in the
JSON says when a stack did not keep up with the load asked for.

Prints one JSON document. Run one benchmark at a time (they share 2 cores):

    flock /tmp/strangler-bench.lock .venv/bin/python bench/cutover.py
    flock /tmp/strangler-bench.lock .venv/bin/python bench/cutover.py --only live --steady 5

Stacks live under ``var/bench-cutover/{live,restart_baseline}/`` (emptied at each
run; kept afterwards for their logs). About 2 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import httpx
from sqlalchemy import Engine, text

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dualwrite.config import Direction, RelaySettings  # noqa: E402
from dualwrite.relay import Relay  # noqa: E402
from dualwrite.status import outbox_backlog  # noqa: E402
from migration_plans.control import transitions  # noqa: E402
from migration_plans.control.processes import free_port  # noqa: E402
from migration_plans.control.stack import (  # noqa: E402
    SERVICE_PORTS,
    Stack,
    StackConfig,
    port_in_use,
    replica_port,
)
from migration_plans.control.traffic import writable_products  # noqa: E402
from migration_plans.core import database  # noqa: E402
from migration_plans.core.control_db import control_engine  # noqa: E402
from migration_plans.core.database import sqlalchemy_url  # noqa: E402
from migration_plans.core.live_phase import read_state  # noqa: E402
from migration_plans.core.phase import Phase  # noqa: E402
from migration_plans.core.settings import copy_templates  # noqa: E402
from migration_plans.testing.databases import (  # noqa: E402
    create_database,
    drop_database,
    pg_admin_url,
    unique_name,
)

CONTEXT = "catalog"
REPLICAS = 2
SEED = {"products": 5000, "customers": 50, "orders": 50, "seed": 42}
ACTOR = "bench-cutover"
STACK_ENV = {"LOG_LEVEL": "WARNING", "STRANGLER_RELAY_POLL_INTERVAL": "0.1"}
JOURNEY: list[tuple[str, str]] = [
    ("advance", "bench: no shadow traffic in a benchmark"),
    ("advance", "bench: gates (reconcile streak, lag) are not measured here"),
    ("rollback", "bench: rollback drill"),
    ("rollback", "bench: rollback drill"),
]
REQUEST_TIMEOUT = 10.0
SATURATED_READ_P50_MS = 250.0
DEFAULT_WRITES, DEFAULT_READS = 100.0, 200.0
MONOLITH_SERVER, MONOLITH_WORKERS = "gunicorn", 2
"""The monolith as production runs it (WSGI, gthread workers): one uvicorn process
saturates one core at 115-225 requests/s here, below the issue's 300 per second."""
ISSUE_WRITES, ISSUE_READS = 100.0, 200.0
NOT_SENT_CODES = ("breaker_open", "auth_unavailable")


# -- the load (its own process) ------------------------------------------------------------


class Sample(NamedTuple):
    """One request: what, through which proxy, when due and answered (monotonic s), how."""

    kind: str  # "read", "write" (price edit), "order"
    proxy: int
    due: float
    done: float
    status: int  # 0: no answer (transport error or timeout)
    error: str  # the error body's code, or the exception
    request_id: str
    target: str
    detail: str = ""  # the error body's detail

    @property
    def latency_ms(self) -> float:
        return (self.done - self.due) * 1000

    @property
    def failed(self) -> bool:
        return self.status == 0 or self.status >= 500


@dataclass(frozen=True)
class LoadSpec:
    proxies: list[str]
    token: str
    writes_per_s: float
    reads_per_s: float
    orders_per_s: float
    products: int
    writable: list[int]
    tag: str = "bench"
    seed: int = 7


@dataclass
class LoadResult:
    samples: list[Sample] = field(default_factory=list)
    acked_prices: dict[int, int] = field(default_factory=dict)  # product -> cents
    unknown: set[int] = field(default_factory=set)  # products with an unanswered edit
    acked_orders: list[int] = field(default_factory=list)
    skipped_writes: int = 0  # no product free to edit (every one had an edit in flight)
    started: float = 0.0
    stopped: float = 0.0

    def to_wire(self) -> dict[str, Any]:
        """Plain values only: this module is ``__mp_main__`` in the load process."""
        wire = dict(vars(self))
        wire["samples"] = [tuple(s) for s in self.samples]
        return wire

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> LoadResult:
        wire["samples"] = [Sample(*s) for s in wire["samples"]]
        return cls(**wire)


class Load:
    """Open-loop reads, price edits and orders through every proxy until told to stop."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.result = LoadResult()
        self.free: deque[int] = deque(spec.writable)
        self.rng = random.Random(spec.seed)
        self.sessions: list[aiohttp.ClientSession] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        for url in self.spec.proxies:
            connector = aiohttp.TCPConnector(limit=400, force_close=False)
            self.sessions.append(
                aiohttp.ClientSession(base_url=url, connector=connector, timeout=timeout)
            )

    async def close(self) -> None:
        for session in self.sessions:
            await session.close()

    async def run(self, stop: asyncio.Event) -> LoadResult:
        self.result.started = time.monotonic()
        streams = [
            asyncio.create_task(self._stream(self.spec.reads_per_s, self._read)),
            asyncio.create_task(self._stream(self.spec.writes_per_s, self._edit)),
            asyncio.create_task(self._stream(self.spec.orders_per_s, self._order)),
        ]
        await stop.wait()
        self.result.stopped = time.monotonic()
        for stream in streams:
            stream.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
        await asyncio.gather(*self.tasks, return_exceptions=True)
        return self.result

    async def _stream(self, rate: float, fire: Callable[[int, float], Any]) -> None:
        """Request ``n`` is due at ``start + n / rate``, whatever happened to the others."""
        if rate <= 0:
            return
        start = self.result.started
        n = 0
        while True:
            due = start + n / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(fire(n, due))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            n += 1

    async def _send(
        self, kind: str, n: int, due: float, method: str, path: str, body: Any = None
    ) -> tuple[int, str, bytes]:
        proxy = n % len(self.sessions)
        # Our own request id: the proxy keeps it, so even a request that never got an
        # answer can be found in the stack's logs.
        request_id = f"{self.spec.tag}-{kind}-{n}"
        headers = {"X-Request-ID": request_id}
        if method != "GET":
            headers["Authorization"] = f"Token {self.spec.token}"
        status, error, detail, data = 0, "", "", b""
        try:
            async with self.sessions[proxy].request(
                method, path, json=body, headers=headers
            ) as response:
                data = await response.read()
                status = response.status
                if status >= 400:
                    error, detail = _error_fields(data)
        except TimeoutError:
            error = "timeout"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
        done = time.monotonic()
        sample = Sample(kind, proxy, due, done, status, error, request_id, path, detail)
        self.result.samples.append(sample)
        return status, error, data

    async def _read(self, n: int, due: float) -> None:
        if self.rng.random() < 0.8:
            path = f"/api/v1/products/{self.rng.randint(1, self.spec.products)}/"
        else:
            path = f"/api/v1/products/?page={self.rng.randint(1, 50)}"
        await self._send("read", n, due, "GET", path)

    async def _edit(self, n: int, due: float) -> None:
        if not self.free:
            self.result.skipped_writes += 1
            return
        product = self.free.popleft()
        cents = 1000 + n  # every edit of a product sets a price no earlier edit set
        body = {"price": f"{cents / 100:.2f}"}
        status, error, _ = await self._send(
            "write", n, due, "PATCH", f"/api/v1/products/{product}/", body
        )
        if status == 200:
            self.result.acked_prices[product] = cents
        elif status == 0 or (status >= 500 and error not in NOT_SENT_CODES):
            self.result.unknown.add(product)  # may or may not have been applied: never reused
            return
        self.free.append(product)

    async def _order(self, n: int, due: float) -> None:
        product = self.rng.randint(1, self.spec.products)
        body = {"lines": [{"product": product, "quantity": 1}], "payment_token": "tok_visa"}
        status, _, data = await self._send("order", n, due, "POST", "/api/v1/orders/", body)
        if status == 201:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self.result.acked_orders.append(int(json.loads(data)["id"]))


def _error_fields(data: bytes) -> tuple[str, str]:
    """``(code, detail)`` of an error body (``{"code", "detail"}``, or raw text)."""
    try:
        body = json.loads(data)
    except ValueError:
        return data[:80].decode(errors="replace"), ""
    if isinstance(body, dict):
        return str(body.get("code", "")), str(body.get("detail", ""))[:200]
    return "", ""


def load_process(spec: LoadSpec, conn: Connection) -> None:
    """The load process: ``ready``, then the load until the parent sends ``stop``."""
    import uvloop

    uvloop.run(_load_main(spec, conn))


async def _load_main(spec: LoadSpec, conn: Connection) -> None:
    load = Load(spec)
    await load.open()
    stop = asyncio.Event()
    conn.send("ready")
    # A thread waits for "stop": a reader on the pipe would leave it non-blocking.
    told = asyncio.get_running_loop().run_in_executor(None, conn.recv)
    told.add_done_callback(lambda _: stop.set())
    try:
        result = await load.run(stop)
    finally:
        await load.close()
    conn.send(result.to_wire())


class LoadRunner:
    """Starts the load process; :meth:`stop` returns what it measured."""

    def __init__(self, spec: LoadSpec) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=load_process, args=(spec, child), daemon=True)

    def start(self) -> LoadRunner:
        self.process.start()
        if not self.conn.poll(30) or self.conn.recv() != "ready":
            raise RuntimeError("the load process did not start")
        return self

    def stop(self) -> LoadResult:
        self.conn.send("stop")
        if not self.conn.poll(REQUEST_TIMEOUT + 30):
            raise RuntimeError("the load process did not report")
        result = LoadResult.from_wire(self.conn.recv())
        self.process.join(10)
        return result

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


# -- the fence, as published --------------------------------------------------------------


class FenceWatch(threading.Thread):
    """Polls the published phase of the context; remembers when its writes were fenced."""

    def __init__(self, control: Engine, interval: float = 0.01) -> None:
        super().__init__(daemon=True, name="fence-watch")
        self.control = control
        self.interval = interval
        self.changes: list[tuple[float, int, bool]] = []  # (monotonic, epoch, fenced)
        self._stop_event = threading.Event()

    def run(self) -> None:
        last: tuple[int, bool] | None = None
        while not self._stop_event.wait(self.interval):
            with contextlib.suppress(Exception):  # a busy SQLite file: next poll
                state = read_state(self.control, CONTEXT)
                if state is not None and (state.epoch, state.fenced) != last:
                    last = (state.epoch, state.fenced)
                    self.changes.append((time.monotonic(), state.epoch, state.fenced))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)

    def fenced_between(self, start: float, end: float) -> list[tuple[float, float]]:
        """The intervals (monotonic) in ``[start, end]`` during which writes were fenced."""
        intervals, up = [], None
        for at, _, fenced in self.changes:
            if fenced and up is None:
                up = at
            elif not fenced and up is not None:
                intervals.append((up, at))
                up = None
        if up is not None:
            intervals.append((up, end))
        return [(a, b) for a, b in intervals if b >= start and a <= end]


# -- figures ------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def latency_figures(values: list[float]) -> dict[str, Any]:
    """n, p50, p99 and max of latencies in ms (``{"n": 0}`` for none)."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 0.5), 1),
        "p99_ms": round(percentile(values, 0.99), 1),
        "max_ms": round(max(values), 1),
    }


def latency(samples: list[Sample]) -> dict[str, Any]:
    values = [s.latency_ms for s in samples]
    figures = latency_figures(values)
    return {**figures, "mean_ms": round(statistics.fmean(values), 1)} if values else figures


def overlapping(samples: list[Sample], start: float, end: float) -> list[Sample]:
    """Requests whose lifetime (due to answer) overlaps ``[start, end]``."""
    return [s for s in samples if s.due <= end and s.done >= start]


def failure_breakdown(samples: list[Sample]) -> dict[str, int]:
    counts = Counter(
        f"{s.kind} {s.status or 'no answer'} {s.error}".strip() for s in samples if s.failed
    )
    return dict(counts.most_common())


def steady_figures(samples: list[Sample], start: float, end: float) -> dict[str, Any]:
    window = [s for s in samples if start <= s.due <= end]
    seconds = end - start
    by_kind = {kind: [s for s in window if s.kind == kind] for kind in ("read", "write", "order")}
    return {
        "seconds": round(seconds, 1),
        "reads": latency(by_kind["read"]),
        "writes": latency(by_kind["write"]),
        "orders": latency(by_kind["order"]),
        "sent_per_s": {kind: round(len(v) / seconds, 1) for kind, v in by_kind.items()},
        "answered_2xx_per_s": {
            kind: round(sum(200 <= s.status < 300 for s in v) / seconds, 1)
            for kind, v in by_kind.items()
        },
        "failed_requests": sum(s.failed for s in window),
        "failures": failure_breakdown(window),
        "saturated": saturated(window),
    }


def saturated(window: list[Sample]) -> bool:
    """The stack does not keep up: requests queue (read p50 over 250 ms) or fail."""
    reads = [s.latency_ms for s in window if s.kind == "read"]
    failed = sum(s.failed for s in window)
    return bool(reads) and (percentile(reads, 0.5) > SATURATED_READ_P50_MS or failed > 0)


@dataclass
class Window:
    """One transition: when it ran and what the control plane said about it."""

    source: str
    target: str
    start: float
    returned: float  # the call (and, in the baseline, the operator's restarts) returned
    end: float  # returned + settle
    call_s: float
    cutover: dict[str, Any] | None = None
    error: str | None = None
    restarted: list[str] = field(default_factory=list)


def transition_figures(
    samples: list[Sample],
    window: Window,
    fences: list[tuple[float, float]],
    steady: dict[str, Any],
) -> dict[str, Any]:
    inside = overlapping(samples, window.start, window.end)
    writes = [s for s in inside if s.kind == "write"]
    reads = [s for s in inside if s.kind == "read"]
    write_p50 = steady["writes"].get("p50_ms", 0.0)
    held = [s for s in writes if any(up <= s.due <= down for up, down in fences)]
    added = [max(0.0, s.latency_ms - write_p50) for s in held]
    read_p99 = latency(reads).get("p99_ms")
    steady_read_p99 = steady["reads"].get("p99_ms")
    failed = [s for s in inside if s.failed]
    figures: dict[str, Any] = {
        "from": window.source,
        "to": window.target,
        "failed_requests": len(failed),
        "fence_hold_ms": {
            "p50": round(percentile(added, 0.5), 1) if added else None,
            "p99": round(percentile(added, 0.99), 1) if added else None,
            "writes_held": len(held),
            "fenced_ms": round(sum(b - a for a, b in fences) * 1000, 1),
            "control_plane_ms": (window.cutover or {}).get("fence_held_ms"),
        },
        "held_write_added_latency_ms": {
            "max": round(max(s.latency_ms for s in writes) - write_p50, 1) if writes else None
        },
        "read_p99_ratio": (
            round(read_p99 / steady_read_p99, 2) if read_p99 and steady_read_p99 else None
        ),
        "duration_s": round(window.returned - window.start, 2),
        "call_s": round(window.call_s, 2),
        "processes_restarted": window.restarted,
        "window_s": round(window.end - window.start, 2),
        "reads": latency(reads),
        "writes": latency(writes),
        "failures": failure_breakdown(inside),
    }
    if window.cutover is not None:
        figures["cutover"] = {
            key: window.cutover.get(key) for key in ("step_ms", "left_out", "lift_acknowledged")
        }
    if window.error is not None:
        figures["error"] = window.error
    return figures


# -- the stack ------------------------------------------------------------------------------


def free_ports(host: str = "127.0.0.1") -> dict[str, Any]:
    """Ports for a stack whose every replica port (base + 10 x i) is free now."""

    def base() -> int:
        while True:
            port = free_port(host)
            if all(not port_in_use(replica_port(port, i), host) for i in range(1, REPLICAS)):
                return port

    return {
        "proxy_port": base(),
        "monolith_port": base(),
        "service_ports": {context: base() for context in SERVICE_PORTS},
    }


def pg_databases(created: list[str], bench: str = "cutover") -> dict[str, Any]:
    """Fresh PostgreSQL databases (``STRANGLER_PG_URL``) for the monolith, services, control."""
    admin = pg_admin_url()
    urls = {}
    for label in ("monolith", "control", *SERVICE_PORTS):
        name = unique_name(f"strangler_bench_{bench}_{label}")
        urls[label] = create_database(admin, name)
        created.append(name)
    return {
        "monolith_db": urls["monolith"],
        "control_db": urls["control"],
        "service_dbs": {context: urls[context] for context in SERVICE_PORTS},
    }


def fresh_stack(var_dir: Path, *, bench: str, databases: dict[str, Any], **config: Any) -> Stack:
    """A stack of ``bench/<bench>.py`` under an emptied ``var_dir`` with its own plans, on
    free ports. ``databases``: ``StackConfig`` overrides (PostgreSQL URLs); empty: SQLite."""
    marker = var_dir / f".strangler-bench-{bench}"
    if var_dir.exists():
        if not marker.exists():
            raise SystemExit(f"{var_dir} exists and was not made by bench/{bench}.py")
        shutil.rmtree(var_dir)
    var_dir.mkdir(parents=True)
    marker.write_text(f"made by bench/{bench}.py; emptied at each run\n")
    copy_templates(var_dir / "plans")
    stack_config = StackConfig.embedded(
        var_dir, plans_dir=var_dir / "plans", **free_ports(), **databases, **config
    )
    return Stack(stack_config, extra_env=STACK_ENV)


def log_in(proxy: str) -> str:
    answer = httpx.post(
        f"{proxy}/api/v1/auth/token/",
        json={"username": "customer000001", "password": "password"},
        timeout=30,
        trust_env=False,
    )
    answer.raise_for_status()
    return str(answer.json()["token"])


def reload_proxies(stack: Stack) -> None:
    for url in stack.config.proxy_urls:
        httpx.post(
            f"{url}/_strangler/reload",
            headers={"Authorization": f"Bearer {stack.config.admin_token}"},
            timeout=10,
            trust_env=False,
        ).raise_for_status()


def transition(stack: Stack, control: Engine, move: str, reason: str, *, live: bool) -> Window:
    """One step of the journey, live or the pinned restart way (:func:`pinned_transition`)."""
    source = stack.plans()[CONTEXT].phase.value
    pids = {name: process.pid for name, process in stack.processes.items()}
    started = time.monotonic()
    window = Window(source, "?", started, started, started, 0.0)
    try:
        with stack.environ():
            if live:
                outcome = call(stack, control, move, reason, run_steps=True)
            else:
                outcome = pinned_transition(stack, control, move, reason)
        window.call_s = time.monotonic() - started
        window.target = outcome.to_phase.value
        window.cutover = None if outcome.cutover is None else outcome.cutover.as_dict()
        if not live:
            stack.restart_context(CONTEXT)
            stack.restart_relay_worker()
            reload_proxies(stack)
    except Exception as exc:  # reported in the JSON; the journey stops there
        window.call_s = window.call_s or time.monotonic() - started
        window.error = f"{type(exc).__name__}: {exc}"[-2000:]
        window.target = stack.plans()[CONTEXT].phase.value
    window.returned = time.monotonic()
    after = {name: process.pid for name, process in stack.processes.items()}
    window.restarted = sorted(name for name, pid in pids.items() if after.get(name) != pid)
    return window


def call(
    stack: Stack, control: Engine, move: str, reason: str, *, run_steps: bool
) -> transitions.Outcome:
    """``transitions.advance`` (forced, with ``reason``) or ``transitions.rollback``."""
    environment = transitions.Environment(
        plans_dir=stack.config.plans_dir,
        routes_path=stack.config.routes_path,
        control=control,
        run_steps=run_steps,
    )
    if move == "advance":
        return transitions.advance(environment, CONTEXT, actor=ACTOR, force=True, reason=reason)
    return transitions.rollback(environment, CONTEXT, actor=ACTOR, reason=reason)


def pinned_transition(stack: Stack, control: Engine, move: str, reason: str) -> transitions.Outcome:
    """A transition as before the live phase; the caller then restarts and reloads.

    The live cut-over drains, behind its fence, what the NEW phase syncs: pinned
    processes never switch, so that drain cannot finish and the cut-over aborts (entering
    dual_write: the relay pinned to shared never relays the captured monolith writes).
    So the baseline does what ``advance``/``rollback`` did then: the steps the move needs
    (``transitions.STEPS`` / ``AFTER_STEPS``, the same ones), the service outbox drained
    before a rollback to shared (the old rollback refused otherwise), and the plan file
    and route table flipped without waiting on any process (``run_steps=False``: the
    published phase changes too, but no pinned process reads it).
    """
    plan = stack.plans()[CONTEXT]
    target = plan.next_phase if move == "advance" else plan.phase.previous
    assert target is not None
    for _, step in transitions.STEPS.get((plan.phase, target), []):
        step(plan)
    if (plan.phase, target) == (Phase.DUAL_WRITE, Phase.SHARED):
        wait_service_outbox_drained()
    outcome = call(stack, control, move, reason, run_steps=False)
    for _, step in transitions.AFTER_STEPS.get((plan.phase, target), []):
        step(plan)
    return outcome


def wait_service_outbox_drained(timeout: float = 30.0) -> None:
    """Until the relay has applied every service write to the monolith (the old check)."""
    relay = Relay(RelaySettings.from_env(CONTEXT))
    deadline = time.monotonic() + timeout
    try:
        while True:
            owed = outbox_backlog(relay, [Direction.SERVICE_TO_MONOLITH])
            if all(backlog.drained for backlog in owed.values()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"service outbox not drained after {timeout:.0f}s: {owed}")
            time.sleep(0.02)
    finally:
        relay.close()


def monolith_prices(stack: Stack, ids: list[int]) -> dict[int, int]:
    rows = _rows(stack.config.monolith_db, "SELECT id, price FROM catalog_product", ids)
    return {int(i): int(Decimal(str(price)) * 100) for i, price in rows}


def service_prices(stack: Stack, ids: list[int]) -> dict[int, int]:
    url = stack.config.service_dbs[CONTEXT]
    return {int(i): int(c) for i, c in _rows(url, "SELECT id, price_cents FROM products", ids)}


def _rows(url: str, select: str, ids: list[int]) -> list[Any]:
    if not ids:
        return []
    listed = ",".join(str(int(i)) for i in ids)
    engine = database.engine(url)
    try:
        with engine.connect().execution_options(sqlite_begin="DEFERRED") as connection:
            return list(connection.execute(text(f"{select} WHERE id IN ({listed})")))
    finally:
        engine.dispose()


def lost_writes(stack: Stack, result: LoadResult, settle: float) -> dict[str, Any]:
    """Acknowledged writes missing from the source of truth of the final phase.

    Polled for up to ``settle`` s (a relay may still be delivering); how long it took
    is reported, and whatever is still missing then is lost.
    """
    phase = stack.plans()[CONTEXT].phase
    truth = "service" if phase is Phase.SPLIT else "monolith"
    read = service_prices if truth == "service" else monolith_prices
    expected = {i: c for i, c in result.acked_prices.items() if i not in result.unknown}
    started = time.monotonic()
    while True:
        found = read(stack, list(expected))
        missing = {i: (c, found.get(i)) for i, c in expected.items() if found.get(i) != c}
        if not missing or time.monotonic() - started > settle:
            break
        time.sleep(0.5)
    orders = _rows(stack.config.monolith_db, "SELECT id FROM orders_order", result.acked_orders)
    lost_orders = len(set(result.acked_orders) - {int(row[0]) for row in orders})
    return {
        "lost_writes": len(missing) + lost_orders,
        "source_of_truth": f"{truth} ({phase.value})",
        "price_edits_checked": len(expected),
        "products_with_unanswered_edit": len(result.unknown),
        "lost_price_edits": len(missing),
        "lost_price_edit_samples": [
            {"product": i, "acknowledged_cents": c, "found_cents": f}
            for i, (c, f) in list(missing.items())[:10]
        ],
        "orders_acknowledged": len(result.acked_orders),
        "lost_orders": lost_orders,
        "settled_after_s": round(time.monotonic() - started, 1),
    }


def failure_samples(
    stack: Stack, samples: list[Sample], origin: float, limit: int = 12
) -> list[dict[str, Any]]:
    """The failed requests (first ``limit``) with the stack's log lines about them.

    ``log``: lines naming the request id (the services log each request; the proxies
    run without an access log); ``warnings_nearby``: warnings and errors any process
    logged while the request was out (e.g. a proxy's breaker opening).
    """
    failed = [s for s in samples if s.failed][:limit]
    wanted = {s.request_id for s in failed}
    lines: dict[str, list[str]] = {rid: [] for rid in wanted}
    warnings: list[tuple[float, str]] = []
    for path in sorted(stack.config.log_dir.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            for rid in wanted:
                if rid in line and len(lines[rid]) < 4:
                    lines[rid].append(f"{path.name}: {line[:400]}")
            at = _warning_at(line)
            if at is not None:
                warnings.append((at, f"{path.name}: {line[:400]}"))
    wall = time.time() - time.monotonic()  # monotonic -> epoch seconds
    return [
        {
            "kind": s.kind,
            "proxy": stack.config.proxy_urls[s.proxy],
            "target": s.target,
            "status": s.status,
            "error": s.error,
            "detail": s.detail,
            "request_id": s.request_id,
            "due_s": round(s.due - origin, 3),
            "latency_ms": round(s.latency_ms, 1),
            "log": lines[s.request_id],
            "warnings_nearby": [
                text for at, text in warnings if s.due + wall - 0.5 <= at <= s.done + wall + 0.5
            ][:6],
        }
        for s in failed
    ]


def _warning_at(line: str) -> float | None:
    """The epoch time of a JSON log line at warning level or above (None otherwise)."""
    if '"level": "warning"' not in line and '"level": "error"' not in line:
        return None
    try:
        return datetime.fromisoformat(json.loads(line)["ts"]).timestamp()
    except (ValueError, KeyError, TypeError):
        return None


@dataclass
class Settings:
    writes: float
    reads: float
    orders: float
    warmup: float
    steady: float
    settle: float
    gap: float
    postgres: bool


def run_stack(var_dir: Path, settings: Settings, *, live: bool) -> dict[str, Any]:
    """One stack (its own databases), its load, its journey; the figures."""
    created: list[str] = []
    try:
        databases = pg_databases(created) if settings.postgres else {}
        stack = fresh_stack(
            var_dir,
            bench="cutover",
            databases=databases,
            replicas=REPLICAS,
            live_phase=live,
            monolith_server=MONOLITH_SERVER,
            monolith_workers=MONOLITH_WORKERS,
        )
        return run_journey(stack, settings, live)
    finally:
        for name in created:
            drop_database(pg_admin_url(), name)


def run_journey(stack: Stack, settings: Settings, live: bool) -> dict[str, Any]:
    """Start ``stack``, load it, move the context through the journey; the figures."""
    runner: LoadRunner | None = None
    watch: FenceWatch | None = None
    try:
        prepared = time.monotonic()
        stack.prepare(services=[])
        stack.run_cli("monolith", "seed", *(f"--{name}={value}" for name, value in SEED.items()))
        stack.start()
        started_s = time.monotonic() - prepared
        control = control_engine(sqlalchemy_url(stack.config.control_db))
        watch = FenceWatch(control)
        watch.start()
        spec = LoadSpec(
            proxies=stack.config.proxy_urls,
            token=log_in(stack.config.proxy_url),
            writes_per_s=settings.writes,
            reads_per_s=settings.reads,
            orders_per_s=settings.orders,
            products=SEED["products"],
            writable=writable_products(SEED["products"]),
            tag=f"cutover-{'live' if live else 'baseline'}-{os.getpid()}",
        )
        runner = LoadRunner(spec).start()
        load_start = time.monotonic()
        time.sleep(settings.warmup + settings.steady)
        steady_window = (load_start + settings.warmup, time.monotonic())
        windows = []
        for move, reason in JOURNEY:
            window = transition(stack, control, move, reason, live=live)
            time.sleep(settings.settle)
            window.end = time.monotonic()
            windows.append(window)
            if window.error is not None:
                break
            time.sleep(settings.gap)
        result = runner.stop()
        runner = None
        watch.stop()
        dead = stack.dead()
        lost = lost_writes(stack, result, settle=20.0)
    finally:
        if runner is not None:
            runner.kill()
        if watch is not None:
            watch.stop()
        stack.stop()
    return summarise(stack, result, steady_window, windows, watch, lost, started_s, dead)


def summarise(
    stack: Stack,
    result: LoadResult,
    steady_window: tuple[float, float],
    windows: list[Window],
    watch: FenceWatch,
    lost: dict[str, Any],
    started_s: float,
    dead: list[str],
) -> dict[str, Any]:
    samples = result.samples
    steady = steady_figures(samples, *steady_window)
    rows = [
        transition_figures(samples, w, watch.fenced_between(w.start, w.end), steady)
        for w in windows
    ]
    in_windows = [s for w in windows for s in overlapping(samples, w.start, w.end)]
    failed_total = sum(row["failed_requests"] for row in rows)
    return {
        "failed_requests_total": failed_total,
        "lost_writes": lost["lost_writes"],
        "transitions": rows,
        "steady": steady,
        "journey_completed": len(rows) == len(JOURNEY) and all("error" not in r for r in rows),
        "failed_outside_transition_windows": sum(s.failed for s in samples)
        - len({id(s) for s in in_windows if s.failed}),
        "skipped_writes_no_free_product": result.skipped_writes,
        "writes_checked": lost,
        "failed_request_samples": failure_samples(stack, samples, result.started),
        "processes_exited_on_their_own": dead,
        "stack_start_s": round(started_s, 1),
        "load_s": round(result.stopped - result.started, 1),
        "log_dir": str(stack.config.log_dir),
    }


def ratios(live: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    failed_live, failed_base = live["failed_requests_total"], baseline["failed_requests_total"]
    if failed_base:
        failed: Any = round(failed_live / failed_base, 3)
    else:
        failed = f"baseline had 0 failed requests (live {failed_live}): no ratio"
    durations = {}
    for a, b in zip(live["transitions"], baseline["transitions"], strict=False):
        if b["duration_s"]:
            durations[f"{a['from']}->{a['to']}"] = round(a["duration_s"] / b["duration_s"], 3)
    total_live = sum(row["duration_s"] for row in live["transitions"])
    total_base = sum(row["duration_s"] for row in baseline["transitions"])
    durations["total"] = round(total_live / total_base, 3) if total_base else None
    return {"failed_requests": failed, "transition_duration": durations}


def git_head() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    )
    return done.stdout.strip()


def backend_description(postgres: bool) -> str:
    """Where a stack benchmark's databases and broker were (for its JSON's setup)."""
    if postgres:
        return "PostgreSQL (STRANGLER_PG_URL's server), broker kombu SQLAlchemy on SQLite"
    return "embedded (SQLite files, kombu SQLAlchemy transport)"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--writes", type=float, default=DEFAULT_WRITES, help="price edits/s")
    parser.add_argument("--reads", type=float, default=DEFAULT_READS, help="product reads/s")
    parser.add_argument("--orders", type=float, default=2.0, help="orders per second")
    parser.add_argument("--warmup", type=float, default=3.0, help="load seconds left out")
    parser.add_argument("--steady", type=float, default=10.0, help="steady window, seconds")
    parser.add_argument("--settle", type=float, default=2.0, help="window after each step")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between windows")
    parser.add_argument("--only", choices=("live", "baseline"), help="run one stack")
    parser.add_argument(
        "--postgres",
        action="store_true",
        default=os.environ.get("STRANGLER_BENCH_PG") == "1",
        help="databases on STRANGLER_PG_URL's server (also STRANGLER_BENCH_PG=1)",
    )
    parser.add_argument("--var-dir", type=Path, default=REPO / "var" / "bench-cutover")
    args = parser.parse_args()
    settings = Settings(
        args.writes,
        args.reads,
        args.orders,
        args.warmup,
        args.steady,
        args.settle,
        args.gap,
        args.postgres,
    )
    figures: dict[str, Any] = {
        "benchmark": "cutover",
        "setup": {
            "backend": backend_description(settings.postgres),
            "replicas": {"proxies": REPLICAS, "per_service": REPLICAS},
            "load": {
                "price_edits_per_s": settings.writes,
                "reads_per_s": settings.reads,
                "orders_per_s": settings.orders,
                "open_loop": True,
                "spread": "alternating over every proxy",
                "timeout_s": REQUEST_TIMEOUT,
                "issue_load": f"{ISSUE_WRITES:g} writes/s + {ISSUE_READS:g} reads/s: more than "
                "the stack's one monolith process serves in shared on 2 cores (module docstring)",
            },
            "seed": SEED,
            "warmup_s": settings.warmup,
            "steady_s": settings.steady,
            "window": f"call start to {settings.settle:g} s after it returned",
            "journey": "shared -> dual_write -> split -> dual_write -> shared",
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "commit": git_head(),
            "at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        },
    }
    if args.only != "baseline":
        figures["live"] = run_stack(args.var_dir / "live", settings, live=True)
    if args.only != "live":
        figures["restart_baseline"] = run_stack(
            args.var_dir / "restart_baseline", settings, live=False
        )
    if "live" in figures and "restart_baseline" in figures:
        figures["ratios"] = ratios(figures["live"], figures["restart_baseline"])
    if "live" in figures:
        figures["goals"] = {
            "live_failed_requests_0": figures["live"]["failed_requests_total"] == 0,
            "live_lost_writes_0": figures["live"]["lost_writes"] == 0,
        }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
