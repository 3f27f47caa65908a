"""Phase replay: replay a context's migration in tests against the real processes.

A pytest plugin (entry point ``pytest11``), so its fixtures are there in any test run
of a project that installs strangler; nothing here runs unless a test asks for it.

- :class:`Topology` starts the whole stack (monolith, services, proxy, relays, Celery
  workers and beat) with :class:`migration_plans.control.stack.Stack` on PostgreSQL and a
  private Redis, or on the embedded default (SQLite + kombu's SQLAlchemy transport),
  with plans copied under its own folder so the project's plan files never change.
- :class:`Workload` drives concurrent traffic through the proxy: orders placed in the
  monolith (which reserve stock in one transaction) and catalog/stock writes, and
  records every *acknowledged* write with its id and expected values.
- :meth:`Topology.advance` / :meth:`Topology.rollback` move a context through
  :mod:`migration_plans.control.transitions` (gates forced only with a recorded reason), then
  restart the context's service and relay, the Celery workers, and reload the proxy.
- :meth:`Topology.fault` injects a named fault (:data:`FAULTS`) and always recovers:
  ``kill_service``, ``kill_relay``, ``stop_broker``, ``service_db_unreachable``,
  ``drop_shadow_upstream``.
- :func:`assert_no_divergence` (relay drained, reconciler report clean) and
  :func:`assert_no_lost_writes` (every acknowledged write on the phase's source of
  truth, and on the other side while sync runs).

Fixtures: ``replay_topology`` (session: one started topology, PostgreSQL + Redis, or
SQLite with ``STRANGLER_REPLAY_BACKEND=embedded``), ``phase_replay`` (that topology,
reset for each test) and ``replay_workload`` (a workload stopped after the test).
Override ``replay_database`` (a factory ``label -> PostgreSQL URL``) to choose where
databases are created.

    import pytest
    from migration_plans.testing.plugin import Topology, Workload, assert_no_divergence, \\
        assert_no_lost_writes

    @pytest.mark.e2e
    def test_catalog_survives_a_relay_crash(phase_replay: Topology,
                                            replay_workload: Workload) -> None:
        with replay_workload.running():
            phase_replay.advance("catalog", force_reason="no shadow traffic in tests")
            with phase_replay.fault("kill_relay", "catalog"):
                replay_workload.wait_for_writes(5)
            replay_workload.wait_for_writes(5)
        assert_no_divergence(phase_replay, "catalog")
        assert_no_lost_writes(replay_workload)
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import httpx

    from dualwrite.status import ContextStatus
    from migration_plans.control.processes import ManagedProcess
    from migration_plans.control.stack import Stack, StackConfig
    from migration_plans.control.transitions import Environment, Outcome
    from migration_plans.core.plan import Plan
    from reconciler.report import Report

__all__ = [
    "FAULTS",
    "AckedWrite",
    "PrivateRedis",
    "SeedSize",
    "Topology",
    "Workload",
    "assert_no_divergence",
    "assert_no_lost_writes",
]

log = logging.getLogger("strangler.replay")

ACTOR = "phase-replay"
FAULTS = (
    "kill_service",
    "kill_relay",
    "stop_broker",
    "service_db_unreachable",
    "drop_shadow_upstream",
)
"""Named fault points understood by :meth:`Topology.fault`."""

DatabaseFactory = Callable[[str], str]


# -- a private broker ---------------------------------------------------------------------


class PrivateRedis:
    """A ``redis-server`` of our own on a free loopback port (stopping it harms nobody)."""

    def __init__(self, log_dir: Path, *, binary: str = "redis-server") -> None:
        from migration_plans.control.processes import free_port

        found = shutil.which(binary)
        if found is None:
            raise FileNotFoundError(f"{binary} is not installed (needed for the private broker)")
        self.binary = found
        self.port = free_port()
        self.log_dir = log_dir
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self) -> None:
        """Start (again, on the same port, empty) and wait until it answers PING."""
        from migration_plans.control.processes import ManagedProcess, wait_until

        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no"]
        self.process = ManagedProcess.start(argv, name="redis", log_dir=self.log_dir)
        wait_until(self.ping, timeout=20, what=f"private redis on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def kill(self) -> None:
        """SIGKILL it (a crash); returns once it no longer answers. :meth:`start` revives it."""
        from migration_plans.control.processes import wait_until

        if self.process is not None:
            self.process.kill()
            self.process = None
        wait_until(lambda: not self.ping(), timeout=10, what=f"private redis {self.port} gone")


# -- the topology -------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedSize:
    """How much shop the monolith is seeded with (small: tests want seconds, not minutes)."""

    products: int = 40
    customers: int = 3
    seed: int = 7


class Topology:
    """A started stack plus the control-plane moves, faults and checks of a phase replay.

    Build it with :meth:`postgres` or :meth:`embedded`, then :meth:`start`;
    :meth:`stop` ends every process it started.
    """

    def __init__(self, stack: Stack, *, broker: PrivateRedis | None = None) -> None:
        self.stack = stack
        self.broker = broker
        self.token = ""
        self.active_faults: list[tuple[str, str | None]] = []
        self.touched: set[str] = set()
        self._down: set[str] = set()

    # -- building -----------------------------------------------------------------------

    @classmethod
    def postgres(cls, var_dir: Path, database: DatabaseFactory, broker: PrivateRedis) -> Topology:
        """Every database from ``database(label)``, Celery on the private ``broker``."""
        from migration_plans.control.stack import SERVICE_PORTS

        urls = {label: database(label) for label in ("monolith", "control", *SERVICE_PORTS)}
        return cls._build(
            var_dir,
            broker,
            monolith_db=urls["monolith"],
            service_dbs={ctx: urls[ctx] for ctx in SERVICE_PORTS},
            control_db=urls["control"],
            broker_url=broker.url,
            result_backend=broker.url,
            redis_url=broker.url,
        )

    @classmethod
    def embedded(cls, var_dir: Path) -> Topology:
        """SQLite files and the SQLAlchemy broker under ``var_dir``: no servers needed."""
        return cls._build(var_dir, None)

    @classmethod
    def _build(cls, var_dir: Path, broker: PrivateRedis | None, **settings: object) -> Topology:
        from migration_plans.control.processes import free_port
        from migration_plans.control.stack import SERVICE_PORTS, Stack, StackConfig
        from migration_plans.core.settings import TEMPLATES_DIR

        plans = var_dir / "plans"
        plans.mkdir(parents=True, exist_ok=True)
        for path in TEMPLATES_DIR.glob("*.yaml"):
            shutil.copyfile(path, plans / path.name)
        config = StackConfig.embedded(
            var_dir,
            plans_dir=plans.resolve(),
            proxy_port=free_port(),
            monolith_port=free_port(),
            service_ports={ctx: free_port() for ctx in SERVICE_PORTS},
            **settings,
        )
        return cls(Stack(config, extra_env={"LOG_LEVEL": "WARNING"}), broker=broker)

    @property
    def config(self) -> StackConfig:
        return self.stack.config

    def start(self, seed: SeedSize = SeedSize()) -> Topology:
        """Migrate, seed the monolith, start every process, log a customer in."""
        self.stack.prepare()
        self.stack.run_cli(
            "monolith", "seed", "--products", str(seed.products),
            "--customers", str(seed.customers), "--orders", "0", "--seed", str(seed.seed),
        )  # fmt: skip
        self.stack.start()
        with self.client(auth=False) as client:
            answer = client.post(
                "/api/v1/auth/token/", json={"username": "customer000001", "password": "password"}
            )
            answer.raise_for_status()
            self.token = str(answer.json()["token"])
        return self

    def stop(self) -> None:
        """Recover any fault still active, then stop every process (broker last)."""
        self.recover_all()
        self.stack.stop()

    def client(self, *, auth: bool = True, timeout: float = 20.0) -> httpx.Client:
        """An HTTP client on the proxy (one per thread), with the customer's token."""
        import httpx

        headers = {"Authorization": f"Token {self.token}"} if auth and self.token else {}
        return httpx.Client(
            base_url=self.config.proxy_url, headers=headers, timeout=timeout, trust_env=False
        )

    # -- the control plane ----------------------------------------------------------------

    @contextmanager
    def environ(self) -> Iterator[None]:
        """``os.environ`` as the stack's processes see it, for in-process control-plane calls."""
        saved = dict(os.environ)
        os.environ.update(self.stack.env())
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def environment(self) -> Environment:
        from migration_plans.control.transitions import Environment
        from migration_plans.core.control_db import control_engine
        from migration_plans.core.database import sqlalchemy_url

        return Environment(
            plans_dir=self.config.plans_dir,
            routes_path=self.config.routes_path,
            control=control_engine(sqlalchemy_url(self.config.control_db)),
        )

    def plan(self, context: str) -> Plan:
        return self.stack.plans()[context]

    def phase(self, context: str) -> str:
        """The context's current phase, as its plan file says."""
        return self.plan(context).phase.value

    def advance(self, context: str, *, force_reason: str | None = None) -> Outcome:
        """Move ``context`` to its next phase through the gates.

        ``force_reason`` forces failing gates and is recorded in the history (a test that
        deliberately skips the evidence, e.g. shadow traffic, says why).
        """
        from migration_plans.control.transitions import advance

        if self.phase(context) == "shared" and context in self.touched:
            self._start_afresh(context)
        with self.environ():
            outcome = advance(
                self.environment(),
                context,
                actor=ACTOR,
                force=force_reason is not None,
                reason=force_reason or "",
            )
        self.touched.add(context)
        self.follow_phase(context)
        return outcome

    def rollback(self, context: str, *, reason: str = "phase replay rollback") -> Outcome:
        """Move ``context`` back one phase (after its service outbox drained, if it must)."""
        from migration_plans.control.transitions import rollback

        if self.phase(context) == "dual_write":
            self.wait_drained(context)
        with self.environ():
            outcome = rollback(self.environment(), context, actor=ACTOR, reason=reason)
        self.follow_phase(context)
        return outcome

    def follow_phase(self, context: str) -> None:
        """What an operator does after a phase change: restart readers of the phase."""
        started = time.perf_counter()
        self.stack.restart_context(context)
        restarted = time.perf_counter()
        self.stack.restart_relay_worker()
        self.reload_proxy()
        log.info(
            "%s is %s: service and relay restarted in %.1fs, relay worker in %.1fs",
            context,
            self.phase(context),
            restarted - started,
            time.perf_counter() - restarted,
        )

    def reload_proxy(self) -> None:
        """Make the proxy load the route table now (it also polls the file)."""
        import httpx

        answer = httpx.post(
            f"{self.config.proxy_url}/_strangler/reload",
            headers={"Authorization": f"Bearer {self.config.admin_token}"},
            timeout=10,
            trust_env=False,
        )
        answer.raise_for_status()

    def set_reverse_sync(self, context: str, enabled: bool) -> None:
        """Switch the plan's ``reverse_sync`` (and restart the context in split)."""
        from migration_plans.control.plan_file import atomic_write
        from migration_plans.core.plan import load_plan

        path = self.config.plans_dir / f"{context}.yaml"
        text, count = re.subn(
            r"(?m)^(reverse_sync:\s*)\S+",
            rf"\g<1>{str(enabled).lower()}",
            path.read_text(),
        )
        if count != 1:
            raise ValueError(f"{path}: no top-level 'reverse_sync:' line")
        atomic_write(path, text)
        load_plan(path)
        if self.phase(context) == "split":
            self.stack.restart_context(context)

    def reset(self) -> None:
        """Recover faults and put every context that is not in ``shared`` back there.

        A context left elsewhere (a failed test) is put back by hand, not through
        rollbacks: plan and routes in ``shared``, reverse sync on, capture off. A context
        that was moved is started afresh when it next enters ``dual_write``: its outbox
        rows go and its service database is discarded and migrated again, as DESIGN.md's
        rollback to ``shared`` says.
        """
        from migration_plans.control.plan_file import set_phase
        from migration_plans.control.routing import apply_phase_to_routes
        from migration_plans.core.plan import Phase

        self.recover_all()
        moved = False
        for context, plan in self.stack.plans().items():
            if plan.phase is Phase.SHARED and plan.reverse_sync:
                continue
            updated = set_phase(self.config.plans_dir / f"{context}.yaml", Phase.SHARED)
            self.set_reverse_sync(context, True)
            plans = self.stack.plans()
            apply_phase_to_routes(self.config.routes_path, updated, Phase.SHARED, plans)
            self._capture(context, enabled=False)
            self.stack.restart_context(context)
            self.touched.add(context)
            moved = True
        if moved:
            self.stack.restart_relay_worker()
            self.reload_proxy()

    def _start_afresh(self, context: str) -> None:
        """Discard what an earlier journey left of ``context``'s sync (it is in ``shared``)."""
        for name in (context, f"relay-{context}"):
            process = self.stack.processes.pop(name, None)
            if process is not None:
                process.stop()
        self._discard_sync_state(context)
        self.stack.run_cli("service", "migrate", context)
        self.stack.start_context(self.plan(context))
        self.touched.discard(context)

    def _capture(self, context: str, *, enabled: bool) -> None:
        from dualwrite.capture import set_capture
        from dualwrite.engines import relay_engine

        engine = relay_engine(self.config.monolith_db, pool_size=1)
        try:
            set_capture(engine, context, enabled=enabled)
        finally:
            engine.dispose()

    def _discard_sync_state(self, context: str) -> None:
        from sqlalchemy import MetaData, text

        from dualwrite.engines import relay_engine

        monolith = relay_engine(self.config.monolith_db, pool_size=1)
        service = relay_engine(self.config.service_dbs[context], pool_size=1)
        try:
            with monolith.begin() as conn:
                for table in ("strangler_outbox", "strangler_applied_event"):
                    conn.execute(text(f"DELETE FROM {table} WHERE context = :c"), {"c": context})
            tables = MetaData()
            tables.reflect(service)
            tables.drop_all(service)
        finally:
            monolith.dispose()
            service.dispose()

    # -- relay and reconciler -------------------------------------------------------------

    def relay_status(self, context: str) -> ContextStatus:
        """What ``strangler dualwrite status CONTEXT`` shows."""
        from dualwrite.config import RelaySettings
        from dualwrite.relay import Relay
        from dualwrite.status import collect_status

        with self.environ():
            relay = Relay(RelaySettings.from_env(context))
        try:
            return collect_status(relay, sample=100)
        finally:
            relay.close()

    def undelivered(self, context: str) -> int | None:
        """Events the phase's relay directions still owe, plus dead letters (None: unreachable).

        A relay that is down or a database that cannot be reached shows here as a
        number that stops going down, never as zero.
        """
        status = self.relay_status(context)
        sides = {"monolith": status.monolith, "service": status.service}
        total = 0
        for direction in status.directions:
            side = sides["monolith" if direction == "monolith_to_service" else "service"]
            if not side.reachable:
                return None
            total += side.pending + side.in_flight
        if not (status.monolith.reachable and status.service.reachable):
            return None
        return total + status.monolith.dead + status.service.dead

    def wait_drained(self, context: str, *, timeout: float = 90.0) -> None:
        """Wait until the relay delivered everything it owes for ``context``."""
        from migration_plans.control.processes import wait_until

        try:
            wait_until(lambda: self.undelivered(context) == 0, timeout=timeout, interval=0.2)
        except TimeoutError as exc:
            status = self.relay_status(context).as_dict()
            status.pop("backfill", None)
            raise AssertionError(
                f"{context}: relay not drained after {timeout:.0f}s: {status}"
            ) from exc

    def reconcile(self, context: str) -> Report:
        """A reconciler run over the context's table pairs, in its current phase."""
        from reconciler.runner import ReconcileOptions, reconcile

        plan = self.plan(context)
        with self.environ():
            return reconcile(
                plan.mapping,
                self.config.monolith_db,
                self.config.service_dbs[context],
                phase=plan.phase.value,
                options=ReconcileOptions(grace_seconds=0.3, create_statistics=False),
            )

    # -- faults ---------------------------------------------------------------------------

    @contextmanager
    def fault(self, name: str, context: str | None = None) -> Iterator[None]:
        """Inject fault ``name`` (one of :data:`FAULTS`) for the block, then recover.

        ``context`` names the service whose process, relay or database is hit (not
        needed for ``stop_broker``). Recovery restarts what was killed and waits until
        it is healthy again.
        """
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
        if name != "stop_broker" and context is None:
            raise ValueError(f"fault {name!r} needs a context")
        getattr(self, name)(context)
        self.active_faults.append((name, context))
        started = time.perf_counter()
        try:
            yield
        finally:
            self.active_faults.remove((name, context))
            injected = time.perf_counter()
            self.recover(name, context)
            log.info(
                "fault %s (%s): held %.1fs, recovered in %.1fs",
                name,
                context or "-",
                injected - started,
                time.perf_counter() - injected,
            )

    def kill_service(self, context: str | None) -> None:
        """SIGKILL the context's service mid-flight (writes in progress are cut)."""
        assert context is not None
        self.stack.processes[context].kill()
        self._down.add(context)

    def kill_relay(self, context: str | None) -> None:
        """SIGKILL the context's relay loop (its in-memory batch is lost; the outbox is not)."""
        assert context is not None
        self.stack.processes[f"relay-{context}"].kill()
        self._down.add(context)

    def drop_shadow_upstream(self, context: str | None) -> None:
        """The shadow upstream (the service, in ``shared``) disappears; users must not notice."""
        self.kill_service(context)

    def stop_broker(self, context: str | None = None) -> None:
        """Stop the private Redis broker (the Celery workers lose their connection)."""
        if self.broker is None:
            pytest.skip("stop_broker needs the PostgreSQL + private Redis topology")
        self.broker.stop()

    def service_db_unreachable(self, context: str | None) -> None:
        """Refuse new connections to the service's database and cut the open ones."""
        assert context is not None
        self._allow_connections(context, False)

    def _allow_connections(self, context: str, allowed: bool) -> None:
        import psycopg
        from psycopg import sql

        from migration_plans.testing.databases import libpq_url, with_database

        url = self.config.service_dbs[context]
        if not url.startswith("postgres"):
            pytest.skip("service_db_unreachable needs PostgreSQL")
        name = url.rsplit("/", 1)[1].split("?", 1)[0]
        admin = with_database(libpq_url(url), "postgres")
        flag = sql.SQL("true" if allowed else "false")
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(sql.Identifier(name), flag)
            )
            if not allowed:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )

    def recover(self, name: str, context: str | None) -> None:
        """Undo fault ``name``: restart, reopen, and wait until healthy."""
        if name == "stop_broker":
            if self.broker is not None and self.broker.process is None:
                self.broker.start()
        elif name == "service_db_unreachable":
            assert context is not None
            self._allow_connections(context, True)
        elif context is not None and context in self._down:
            self._down.discard(context)
            self.stack.restart_context(context)

    def recover_all(self) -> None:
        """Undo every active fault; restart a context whose service or relay exited."""
        for name, context in reversed(self.active_faults):
            self.recover(name, context)
        self.active_faults.clear()
        self._down.update(
            name.removeprefix("relay-")
            for name in self.stack.dead()
            if name.removeprefix("relay-") in self.config.service_ports
        )
        for context in sorted(self._down):
            self.recover("kill_service", context)
        if self.broker is not None and self.broker.process is None:
            self.broker.start()

    def assert_alive(self) -> None:
        """Fail naming every process that exited on its own (with the end of its log)."""
        dead = self.stack.dead()
        if dead:
            tails = "\n".join(
                f"{name}:\n{self.stack.processes[name].log_tail(15)}" for name in dead
            )
            raise AssertionError(f"processes exited on their own: {', '.join(dead)}\n{tails}")


# -- the workload -------------------------------------------------------------------------


@dataclass(frozen=True)
class AckedWrite:
    """A write the system acknowledged (2xx) and must therefore never lose.

    ``table`` is a table pair of ``context`` (``products``, ``stock_levels``) or
    ``orders`` (an order placed in the monolith, with its reservations); ``expected``
    holds monolith-form values (``{"price": "12.50"}``, ``{"quantity": 7}``,
    ``{product_id: units}`` for orders).
    """

    context: str
    table: str
    key: int
    expected: dict[Any, Any]
    phase: str
    request_id: str = ""


@dataclass
class _Stats:
    acked: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    samples: dict[str, str] = field(default_factory=dict)


class Workload:
    """Concurrent traffic through the proxy; keeps every acknowledged write.

    Three kinds of writer run while :meth:`running`:

    - orders: ``POST /api/v1/orders/`` (the monolith reserves stock in the order's
      transaction) on ``order_products``. While inventory is in ``split`` the
      monolith's own order code would write a copy that is no longer the truth, so
      the order's stock is reserved through the inventory service instead
      (``POST /api/v1/stock/reserve/``), as the monolith must do after the split.
    - catalog: creates a product, then changes its price and name, through the proxy.
    - stock: ``PATCH /api/v1/stock/{id}/`` on stock items of ``stock_products`` (kept
      apart from ``order_products``: a row written from both sides at once is settled
      by the phase's source of truth, which is no guarantee a test can assert).

    Only 2xx answers are recorded; refusals (a killed service, a phase in the middle
    of changing) are counted in :attr:`refused`.
    """

    def __init__(
        self,
        topology: Topology,
        *,
        order_products: Sequence[int] = (),
        stock_products: Sequence[int] = (),
        writers: Sequence[str] = ("orders", "orders", "catalog", "stock"),
        pace: float = 0.15,
        seed: int = 0,
    ) -> None:
        self.topology = topology
        self.order_products = list(order_products)
        self.stock_products = list(stock_products)
        self.writers = list(writers)
        self.pace = pace
        self.rng = random.Random(seed)
        self.writes: list[AckedWrite] = []
        self.stats = _Stats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._go = threading.Event()
        self._go.set()
        self._busy = 0
        self._idle = threading.Condition(self._lock)
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []
        self._stock_ids: list[int] = []
        self._next_reservation_order = 900_000_000

    @property
    def refused(self) -> Counter[str]:
        return self.stats.refused

    def acked(self, table: str | None = None) -> int:
        """How many writes (of ``table``) were acknowledged so far."""
        with self._lock:
            return sum(1 for w in self.writes if table is None or w.table == table)

    # -- running ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer threads (idempotent)."""
        if self._threads:
            return
        if not self.order_products or not self.stock_products:
            self._choose_products()
        self._stop.clear()
        for index, kind in enumerate(self.writers):
            thread = threading.Thread(
                target=self._loop, args=(kind, index), name=f"workload-{kind}-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop the writers after their current request; re-raise a writer's crash."""
        self._stop.set()
        self._go.set()
        for thread in self._threads:
            thread.join(timeout=60)
        self._threads.clear()
        if self._errors:
            raise self._errors[0]

    @contextmanager
    def running(self) -> Iterator[Workload]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No request in flight and none started for the block (a write freeze)."""
        self._go.clear()
        with self._idle:
            self._idle.wait_for(lambda: self._busy == 0, timeout=60)
        try:
            yield
        finally:
            self._go.set()

    def wait_for_writes(self, count: int, *, table: str | None = None, timeout: float = 60) -> None:
        """Wait until ``count`` more writes (of ``table``) were acknowledged."""
        from migration_plans.control.processes import wait_until

        target = self.acked(table) + count
        wait_until(
            lambda: self.acked(table) >= target or bool(self._errors),
            timeout=timeout,
            interval=0.1,
            what=f"{count} more acknowledged writes ({table or 'any'}); refused: "
            f"{self.refused}, e.g. {self.stats.samples}",
        )
        if self._errors:
            raise self._errors[0]

    def _loop(self, kind: str, index: int) -> None:
        step = {"orders": self._order, "catalog": self._catalog, "stock": self._stock}[kind]
        rng = random.Random(self.rng.random() + index)
        with self.topology.client() as client:
            while not self._stop.is_set():
                self._go.wait()
                if self._stop.is_set():
                    return
                with self._lock:
                    self._busy += 1
                try:
                    step(client, rng)
                except Exception as exc:
                    if not _transient(exc):
                        self._errors.append(exc)
                        return
                    self.stats.refused[f"{kind}: {type(exc).__name__}"] += 1
                finally:
                    with self._idle:
                        self._busy -= 1
                        self._idle.notify_all()
                self._stop.wait(self.pace)

    def _choose_products(self) -> None:
        """Active products with the most stock: orders get most of them, stock writes the rest."""
        with self.topology.client() as client:
            answer = client.get(
                "/api/v1/stock/", params={"ordering": "-quantity", "page_size": 100}
            )
            answer.raise_for_status()
            active = client.get("/api/v1/products/", params={"is_active": "true", "page_size": 500})
            active.raise_for_status()
        usable = {int(product["id"]) for product in active.json()["results"]}
        ranked: list[int] = []
        for item in answer.json()["results"]:
            product = int(item["product"])
            if product in usable and product not in ranked:
                ranked.append(product)
        self.order_products = self.order_products or ranked[:10]
        self.stock_products = self.stock_products or ranked[10:16]
        if len(self.order_products) < 2 or not self.stock_products:
            raise RuntimeError(f"the seeded shop has too few stocked products: {ranked}")

    def _record(self, write: AckedWrite) -> None:
        with self._lock:
            self.writes.append(write)
            self.stats.acked[write.table] += 1

    def _refused(self, kind: str, answer: httpx.Response) -> None:
        name = f"{kind}: {answer.status_code}"
        self.stats.refused[name] += 1
        self.stats.samples.setdefault(name, answer.text[:300])

    def _order(self, client: httpx.Client, rng: random.Random) -> None:
        products = rng.sample(self.order_products, k=min(2, len(self.order_products)))
        lines = [{"product": product, "quantity": 1} for product in products]
        inventory = self.topology.phase("inventory")
        if inventory == "split":
            with self._lock:
                self._next_reservation_order += 1
                order_id = self._next_reservation_order
            answer = client.post(
                "/api/v1/stock/reserve/", json={"order_id": order_id, "lines": lines}
            )
        else:
            body = {"lines": lines, "payment_token": "tok_visa"}
            answer = client.post("/api/v1/orders/", json=body)
            order_id = int(answer.json()["id"]) if answer.status_code == 201 else 0
        if answer.status_code != 201:
            self._refused("orders", answer)
            return
        expected = {product: 1 for product in products}
        self._record(AckedWrite("inventory", "orders", order_id, expected, inventory))

    def _catalog(self, client: httpx.Client, rng: random.Random) -> None:
        phase = self.topology.phase("catalog")
        number = rng.randrange(10**9)
        body = {
            "sku": f"REPLAY-{number}",
            "name": f"Replay {number}",
            "description": "written by the phase replay",
            "price": f"{rng.randrange(100, 99999) / 100:.2f}",
            "is_active": True,
            "category": 1,
        }
        answer = client.post("/api/v1/products/", json=body)
        if answer.status_code != 201:
            self._refused("catalog", answer)
            return
        key = int(answer.json()["id"])
        expected = {k: body[k] for k in ("sku", "name", "price", "is_active")}
        self._record(AckedWrite("catalog", "products", key, expected, phase, _rid(answer)))
        change = {"price": f"{rng.randrange(100, 99999) / 100:.2f}", "name": f"Renamed {number}"}
        answer = client.patch(f"/api/v1/products/{key}/", json=change)
        if answer.status_code != 200:
            self._refused("catalog", answer)
            return
        phase = self.topology.phase("catalog")
        self._record(
            AckedWrite("catalog", "products", key, {**expected, **change}, phase, _rid(answer))
        )

    def _stock(self, client: httpx.Client, rng: random.Random) -> None:
        if not self._stock_ids:
            answer = client.get("/api/v1/stock/", params={"page_size": 200})
            answer.raise_for_status()
            wanted = set(self.stock_products)
            self._stock_ids = [
                int(item["id"]) for item in answer.json()["results"] if item["product"] in wanted
            ]
        phase = self.topology.phase("inventory")
        if phase == "shared":
            return  # the stock item writes of the context go through the service only
        key = rng.choice(self._stock_ids)
        quantity = rng.randrange(50, 500)
        answer = client.patch(f"/api/v1/stock/{key}/", json={"quantity": quantity})
        if answer.status_code != 200:
            self._refused("stock", answer)
            return
        expected = {"quantity": quantity}
        self._record(AckedWrite("inventory", "stock_levels", key, expected, phase, _rid(answer)))


def _rid(answer: httpx.Response) -> str:
    return answer.headers.get("x-request-id", "")


def _transient(exc: BaseException) -> bool:
    """Connection-level failures while a fault or a restart is under way."""
    import httpx

    return isinstance(exc, httpx.TransportError)


# -- assertions ---------------------------------------------------------------------------


def assert_no_divergence(topology: Topology, context: str, *, timeout: float = 90.0) -> Report:
    """The relay drained and a reconciler run over ``context`` is clean.

    Rows with an event still on its way (writes keep coming) are in flight, not
    divergent; divergent rows after the drain fail with the reconciler's findings.
    In ``shared`` the service copy is the one frozen at the last rollback: call this
    before new writes reach the context.
    """
    topology.wait_drained(context, timeout=timeout)
    report = topology.reconcile(context)
    if report.verdict != "clean":
        lines = [f"{context}: reconciler verdict {report.verdict} in {report.phase}"]
        for table in report.tables:
            if table.error or table.divergent:
                lines.append(
                    f"  {table.name}: missing in service {table.missing_in_service}, missing in "
                    f"monolith {table.missing_in_monolith}, differing {table.differing} "
                    f"{table.field_totals} {table.error or ''}"
                )
                lines += [f"    {d.model_dump(mode='json')}" for d in table.divergences[:5]]
        raise AssertionError("\n".join(lines))
    return report


def assert_no_lost_writes(workload: Workload, *, timeout: float = 90.0) -> None:
    """Every acknowledged write is on the source of truth of its context's current phase,
    with its final value, and on the other side while sync runs (dual_write, or split
    with reverse sync). Waits for the relays to drain first.
    """
    topology = workload.topology
    with workload._lock:
        writes = list(workload.writes)
    final: dict[tuple[str, str, int], AckedWrite] = {}
    for write in writes:
        final[(write.context, write.table, write.key)] = write
    problems: list[str] = []
    for context in sorted({write.context for write in final.values()}):
        plan = topology.plan(context)
        sides = ["monolith"]
        if plan.phase.value == "split":
            sides = ["service", "monolith"] if plan.reverse_sync else ["service"]
        elif plan.phase.value == "dual_write":
            sides = ["monolith", "service"]
        if len(sides) > 1 or sides == ["service"]:
            topology.wait_drained(context, timeout=timeout)
        mine = [w for w in final.values() if w.context == context]
        for side in sides:
            problems += _missing(topology, context, side, mine)
    if problems:
        shown = "\n  ".join(problems[:20])
        raise AssertionError(
            f"{len(problems)} acknowledged writes lost or wrong (of {len(final)} checked):\n"
            f"  {shown}"
        )


def _missing(topology: Topology, context: str, side: str, writes: list[AckedWrite]) -> list[str]:
    from sqlalchemy import text

    from dualwrite.engines import relay_engine
    from migration_plans.core.database import sqlalchemy_url

    config = topology.config
    url = config.monolith_db if side == "monolith" else config.service_dbs[context]
    mapping = topology.plan(context).mapping
    engine = relay_engine(sqlalchemy_url(url), pool_size=1)
    problems: list[str] = []
    try:
        with engine.connect() as conn:
            for write in writes:
                if write.table == "orders":
                    found = _reserved_units(conn, side, write.key)
                    if found != {int(k): v for k, v in write.expected.items()}:
                        problems.append(
                            f"{side}: order {write.key} ({write.phase}) reserved {found}, "
                            f"acknowledged {write.expected}"
                        )
                    continue
                pair = mapping.table(write.table)
                table = pair.service_table if side == "service" else pair.monolith_table
                key = pair.key.service if side == "service" else pair.key.monolith
                row = (
                    conn.execute(
                        text(f'SELECT * FROM "{table}" WHERE "{key}" = :key'), {"key": write.key}
                    )
                    .mappings()
                    .first()
                )
                if row is None:
                    problems.append(f"{side}: {write.table} {write.key} ({write.phase}) missing")
                    continue
                image = dict(row) if side == "monolith" else pair.to_monolith(dict(row))
                wrong = {
                    name: (image.get(name), value)
                    for name, value in write.expected.items()
                    if _normal(image.get(name)) != _normal(value)
                }
                if wrong:
                    problems.append(
                        f"{side}: {write.table} {write.key} ({write.phase}) has/acked {wrong}"
                    )
    finally:
        engine.dispose()
    return problems


def _reserved_units(conn: Any, side: str, order_id: int) -> dict[int, int]:
    from sqlalchemy import text

    if side == "monolith":
        query = (
            "SELECT s.product_id, sum(r.quantity) FROM inventory_reservation r "
            "JOIN inventory_stockitem s ON s.id = r.stock_item_id "
            "WHERE r.order_id = :order GROUP BY s.product_id"
        )
    else:
        query = (
            "SELECT s.product_id, sum(r.quantity) FROM reservations r "
            "JOIN stock_levels s ON s.id = r.stock_level_id "
            "WHERE r.order_id = :order GROUP BY s.product_id"
        )
    return {int(p): int(q) for p, q in conn.execute(text(query), {"order": order_id})}


def _normal(value: Any) -> Any:
    """Compare ``Decimal('12.50')``, ``'12.50'`` and ``12.5`` as equal; booleans as booleans."""
    from decimal import Decimal, InvalidOperation

    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value)).normalize()
    if isinstance(value, str):
        try:
            return Decimal(value).normalize()
        except InvalidOperation:
            return value
    return value


# -- fixtures -----------------------------------------------------------------------------


def _unavailable(reason: str) -> None:
    """Skip locally; under ``CI=true`` a missing server fails the run."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: a missing service fails the run)", pytrace=False)
    pytest.skip(reason)


def _embedded() -> bool:
    return os.environ.get("STRANGLER_REPLAY_BACKEND", "postgres").lower() == "embedded"


@pytest.fixture(scope="session")
def replay_database() -> Iterator[DatabaseFactory]:
    """Factory ``label -> URL`` of a new PostgreSQL database (``STRANGLER_PG_URL``), dropped
    at the end of the session. Override it to create databases elsewhere."""
    from migration_plans.testing.databases import (
        DatabaseUnavailable,
        check_server,
        create_database,
        drop_database,
        pg_admin_url,
        unique_name,
    )

    admin = pg_admin_url()
    try:
        check_server(admin)
    except DatabaseUnavailable as exc:
        _unavailable(str(exc))
    created: list[str] = []

    def make(label: str) -> str:
        name = unique_name(f"strangler_replay_{label}")
        created.append(name)
        return create_database(admin, name)

    yield make
    for name in created:
        drop_database(admin, name)


@pytest.fixture(scope="session")
def replay_topology(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Topology]:
    """One started topology for the session (PostgreSQL + private Redis by default)."""
    var_dir = tmp_path_factory.mktemp("phase-replay")
    broker: PrivateRedis | None = None
    if _embedded():
        topology = Topology.embedded(var_dir)
    else:
        database: DatabaseFactory = request.getfixturevalue("replay_database")
        try:
            broker = PrivateRedis(var_dir / "log")
        except FileNotFoundError as exc:
            _unavailable(str(exc))
        assert broker is not None
        broker.start()
        topology = Topology.postgres(var_dir, database, broker)
    try:
        yield topology.start()
    finally:
        topology.stop()
        if broker is not None:
            broker.stop()


@pytest.fixture
def phase_replay(replay_topology: Topology) -> Iterator[Topology]:
    """The session's topology with every context in ``shared`` and no fault active."""
    replay_topology.reset()
    yield replay_topology
    replay_topology.reset()


@pytest.fixture
def replay_workload(phase_replay: Topology) -> Iterator[Workload]:
    """A :class:`Workload` on the topology, stopped when the test ends."""
    workload = Workload(phase_replay)
    yield workload
    workload.stop()
