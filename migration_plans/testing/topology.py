"""A started stack plus the control-plane moves of a phase replay.

:class:`Topology` runs :class:`migration_plans.control.stack.Stack` (monolith, services,
proxy, relays, Celery workers and beat) on PostgreSQL and a private Redis, or on the
embedded default (SQLite + kombu's SQLAlchemy transport), with plans copied under its
own folder. The project says which plans, which monolith (:class:`ReplayProject`: its
Django settings, Celery app, health path, import path), how the monolith is seeded and
how a client logs in; the topology knows none of them. The services are the contexts
of the plans, each on a database and free ports of its own.

    topology = Topology.embedded(tmp_path, replicas=2).start(seed=seed_demo_data, login=log_in)
    library = ReplayProject(plans=Path("tests/library/plans"),
                            monolith_settings="tests.library.monolith.settings")
    topology = Topology.postgres(tmp_path, database, broker, project=library)
    topology.advance("catalog", force_reason="no shadow traffic in tests")   # live, no restart
    with topology.fault("kill_relay", "catalog"):
        ...
    topology.stop()
"""

from __future__ import annotations

import itertools
import logging
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import MetaData, text

from dualwrite.capture import set_capture
from dualwrite.config import RelaySettings
from dualwrite.engines import relay_engine
from dualwrite.relay import Relay
from dualwrite.status import ContextStatus, collect_status
from migration_plans.control import transitions
from migration_plans.control.acks import Expectation, wait_for_acks
from migration_plans.control.cutover import CutOverSettings, route_file_hash
from migration_plans.control.plan_file import atomic_write, set_phase
from migration_plans.control.processes import free_port, wait_until
from migration_plans.control.routing import apply_phase_to_routes
from migration_plans.control.stack import (
    MAX_REPLICAS,
    SHOP_SETTINGS,
    Stack,
    StackConfig,
    port_in_use,
    replica_name,
    replica_port,
)
from migration_plans.core.control_db import control_engine, dispose_control_engines
from migration_plans.core.live_phase import publish
from migration_plans.core.phase import Phase
from migration_plans.core.plan import Plan, load_plan, load_plans
from migration_plans.core.settings import TEMPLATES_DIR
from migration_plans.testing.broker import PrivateRedis
from migration_plans.testing.faults import Faults
from reconciler.connections import dispose_engines
from reconciler.report import Report
from reconciler.runner import ReconcileOptions, reconcile

__all__ = ["DatabaseFactory", "Login", "ReplayProject", "Seed", "Topology"]

log = logging.getLogger("strangler.replay")

ACTOR = "phase-replay"

DatabaseFactory = Callable[[str], str]
"""``label -> URL`` of a new, empty database."""

Seed = Callable[[Stack], None]
"""Fills the migrated monolith before the processes start (e.g. ``stack.run_cli(...)``)."""

Login = Callable[[httpx.Client], Mapping[str, str]]
"""Logs a client in through the proxy; returns the headers an authenticated client sends."""


@dataclass(frozen=True)
class ReplayProject:
    """What a phase replay runs: the project's plans and monolith (default: the shop's).

    ``plans``: a folder whose ``*.yaml`` plans are copied into the topology's own (the
    shipped templates when ``None``); every context in it gets a service database and
    ports. ``monolith_settings``, ``monolith_celery_app`` (``None``: the shop's with the
    shop's settings, else none; ``""``: none) and ``monolith_health_path`` are the
    :class:`~migration_plans.control.stack.StackConfig` fields of the same names;
    ``project_path`` goes first on every child's ``PYTHONPATH``; ``env`` is added to
    every child's environment.
    """

    plans: Path | None = None
    monolith_settings: str = SHOP_SETTINGS
    monolith_celery_app: str | None = None
    monolith_health_path: str = "/healthz"
    project_path: tuple[Path, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)

    def copy_plans(self, target: Path) -> dict[str, Plan]:
        """Copy the project's plans into ``target``; the plans by context (all checked)."""
        source = TEMPLATES_DIR if self.plans is None else self.plans
        found = sorted(source.glob("*.yaml"))
        if not found:
            raise FileNotFoundError(f"no *.yaml plan in {source} (ReplayProject.plans)")
        target.mkdir(parents=True, exist_ok=True)
        for path in found:
            shutil.copyfile(path, target / path.name)
        return load_plans(target)

    def stack_settings(self) -> dict[str, object]:
        """This project's :class:`StackConfig` fields."""
        return {
            "monolith_settings": self.monolith_settings,
            "monolith_celery_app": self.monolith_celery_app,
            "monolith_health_path": self.monolith_health_path,
            "project_path": self.project_path,
        }


SHOP = ReplayProject()
"""The example shop: the shipped plan templates and ``legacy_monolith``."""


def _free_replica_port(replicas: int, taken: set[int]) -> int:
    """A free port ``p`` such that every replica port ``p + 10 i`` is free too and none is
    in ``taken`` (which gets them)."""
    for _ in range(100):
        base = free_port()
        if base + 10 * MAX_REPLICAS > 65535:
            continue
        block = {replica_port(base, i) for i in range(replicas)}
        if block & taken:
            continue
        if not any(port_in_use(replica_port(base, i)) for i in range(1, replicas)):
            taken.update(block)
            return base
    raise RuntimeError(f"no free block of {replicas} replica ports found")


class Topology:
    """A started stack plus the control-plane moves, faults and checks of a phase replay.

    Build it with :meth:`postgres` or :meth:`embedded`, then :meth:`start`;
    :meth:`stop` ends every process it started.
    """

    def __init__(self, stack: Stack, *, broker: PrivateRedis | None = None) -> None:
        self.stack = stack
        self.broker = broker
        self.faults = Faults(stack, broker)
        self.auth_headers: dict[str, str] = {}
        self.touched: set[str] = set()
        self._next_proxy = itertools.count()
        self.cutover = CutOverSettings()
        """Fence and acknowledgement deadlines of this topology's transitions."""
        self._imports_added: list[str] = []

    # -- building -----------------------------------------------------------------------

    @classmethod
    def postgres(
        cls,
        var_dir: Path,
        database: DatabaseFactory,
        broker: PrivateRedis,
        *,
        replicas: int = 1,
        project: ReplayProject = SHOP,
    ) -> Topology:
        """Every database from ``database(label)``, Celery on the private ``broker``.

        ``replicas``: proxies and processes per service (traffic spreads over the proxies);
        ``project``: the plans and the monolith (default: the shop).
        """
        contexts = project.copy_plans(var_dir / "plans")
        urls = {label: database(label) for label in ("monolith", "control", *contexts)}
        return cls._build(
            var_dir,
            broker,
            project=project,
            contexts=contexts,
            replicas=replicas,
            monolith_db=urls["monolith"],
            service_dbs={ctx: urls[ctx] for ctx in contexts},
            control_db=urls["control"],
            broker_url=broker.url,
            result_backend=broker.url,
            redis_url=broker.url,
        )

    @classmethod
    def embedded(
        cls, var_dir: Path, *, replicas: int = 1, project: ReplayProject = SHOP
    ) -> Topology:
        """SQLite files and the SQLAlchemy broker under ``var_dir``: no servers needed."""
        contexts = project.copy_plans(var_dir / "plans")
        return cls._build(var_dir, None, project=project, contexts=contexts, replicas=replicas)

    @classmethod
    def _build(
        cls,
        var_dir: Path,
        broker: PrivateRedis | None,
        *,
        project: ReplayProject,
        contexts: Mapping[str, Plan],
        replicas: int,
        **settings: object,
    ) -> Topology:
        taken: set[int] = set()
        config = StackConfig.embedded(
            var_dir,
            plans_dir=(var_dir / "plans").resolve(),
            proxy_port=_free_replica_port(replicas, taken),
            monolith_port=_free_replica_port(1, taken),
            service_ports={ctx: _free_replica_port(replicas, taken) for ctx in contexts},
            replicas=replicas,
            **project.stack_settings(),
            **settings,
        )
        env = {"LOG_LEVEL": "WARNING", **project.env}
        return cls(Stack(config, extra_env=env), broker=broker)

    @property
    def config(self) -> StackConfig:
        return self.stack.config

    def start(self, *, seed: Seed | None = None, login: Login | None = None) -> Topology:
        """Migrate, ``seed`` the monolith, start every process, then ``login`` a client.

        The headers ``login`` returns go with every :meth:`client` (none without it).
        The project's folders go first on this process's import path too, until
        :meth:`stop`: transitions run here, and they import the services' packages.
        """
        self._add_project_imports()
        self.stack.prepare()
        if seed is not None:
            seed(self.stack)
        self.stack.start()
        if login is not None:
            with self.client(auth=False) as client:
                self.auth_headers = dict(login(client))
        return self

    def stop(self) -> None:
        """Recover any fault still active, then stop every process (broker last)."""
        self.recover_all()
        self.stack.stop()
        # the reconciler and the control plane ran here: give their pooled connections
        # back (PostgreSQL's max_connections is shared by every test and process)
        dispose_engines()
        dispose_control_engines()
        for folder in self._imports_added:
            with suppress(ValueError):
                sys.path.remove(folder)
        self._imports_added.clear()

    def _add_project_imports(self) -> None:
        for path in reversed(self.config.project_path):
            folder = str(path)
            if folder not in sys.path:
                sys.path.insert(0, folder)
                self._imports_added.append(folder)

    def client(
        self, *, auth: bool = True, timeout: float = 20.0, proxy: int | None = None
    ) -> httpx.Client:
        """An HTTP client on one proxy (one per thread), logged in unless ``auth=False``.

        Successive clients go to the proxies in turn (``proxy`` picks one), so a threaded
        workload spreads its traffic over every proxy replica.
        """
        headers = self.auth_headers if auth else {}
        urls = self.config.proxy_urls
        index = next(self._next_proxy) if proxy is None else proxy
        return httpx.Client(
            base_url=urls[index % len(urls)], headers=headers, timeout=timeout, trust_env=False
        )

    # -- the control plane ----------------------------------------------------------------

    @contextmanager
    def environ(self) -> Iterator[None]:
        """``os.environ`` as the stack's processes see it, for in-process control-plane calls."""
        with self.stack.environ():
            yield

    def environment(self) -> transitions.Environment:
        """Where the transitions find this topology's plans, routes and control database."""
        return transitions.Environment(
            plans_dir=self.config.plans_dir,
            routes_path=self.config.routes_path,
            control=control_engine(self.config.control_db),
            cutover=self.cutover,
        )

    def plan(self, context: str) -> Plan:
        return self.stack.plans()[context]

    def phase(self, context: str) -> str:
        """The context's current phase, as its plan file says."""
        return self.plan(context).phase.value

    def advance(
        self, context: str, *, force_reason: str | None = None, leave_out: bool | None = None
    ) -> transitions.Outcome:
        """Move ``context`` to its next phase through the gates.

        ``force_reason`` forces failing gates and is recorded in the history (a test that
        deliberately skips the evidence, e.g. shadow traffic, says why); it also leaves out
        replicas that do not acknowledge, unless ``leave_out=False``.
        """
        self.ensure_fresh(context)
        with self.environ():
            outcome = transitions.advance(
                self.environment(),
                context,
                actor=ACTOR,
                force=force_reason is not None,
                reason=force_reason or "",
                leave_out=leave_out,
            )
        self.touched.add(context)
        self.follow_phase(context)
        return outcome

    def rollback(
        self, context: str, *, reason: str = "phase replay rollback"
    ) -> transitions.Outcome:
        """Move ``context`` back one phase (the cut-over's fence drains the outboxes)."""
        if self.phase(context) == "dual_write" and not self.config.live_phase:
            self.wait_drained(context)
        with self.environ():
            outcome = transitions.rollback(self.environment(), context, actor=ACTOR, reason=reason)
        self.follow_phase(context)
        return outcome

    def follow_phase(self, context: str) -> None:
        """Without live phase, what an operator did after a phase change: restart its readers.

        With live phase (the default) the cut-over already waited until every replica
        acknowledged the new phase: nothing to do.
        """
        if self.config.live_phase:
            return
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
        """Make every proxy load the route table now (they also poll the file)."""
        for url in self.config.proxy_urls:
            answer = httpx.post(
                f"{url}/_strangler/reload",
                headers={"Authorization": f"Bearer {self.config.admin_token}"},
                timeout=10,
                trust_env=False,
            )
            answer.raise_for_status()

    def set_reverse_sync(self, context: str, enabled: bool) -> None:
        """Switch the plan's ``reverse_sync`` (and restart the context in split)."""
        path = self.config.plans_dir / f"{context}.yaml"
        content, count = re.subn(
            r"(?m)^(reverse_sync:\s*)\S+",
            rf"\g<1>{str(enabled).lower()}",
            path.read_text(),
        )
        if count != 1:
            raise ValueError(f"{path}: no top-level 'reverse_sync:' line")
        atomic_write(path, content)
        load_plan(path)
        if self.phase(context) == "split":
            self.stack.restart_context(context)

    def reset(self) -> None:
        """Recover faults and put every context that is not in ``shared`` back there.

        A context left elsewhere (a failed test) is put back by hand, not through
        rollbacks: plan and routes in ``shared``, reverse sync on, capture off. A context
        that was moved is started afresh when it next enters ``dual_write``: its outbox
        rows go and its service database is discarded and migrated again, as DESIGN.md's
        rollback to ``shared`` says. The reconciler's and the control plane's pooled
        connections in this process are given back between tests.
        """
        self.recover_all()
        dispose_engines()
        dispose_control_engines()
        moved = False
        for context, plan in self.stack.plans().items():
            if plan.phase is Phase.SHARED and plan.reverse_sync:
                continue
            updated = set_phase(self.config.plans_dir / f"{context}.yaml", Phase.SHARED)
            self.set_reverse_sync(context, True)
            plans = self.stack.plans()
            apply_phase_to_routes(self.config.routes_path, updated, Phase.SHARED, plans)
            self._capture(context, enabled=False)
            if self.config.live_phase:
                self._publish(context, Phase.SHARED)
            else:
                self.stack.restart_context(context)
            self.touched.add(context)
            moved = True
        if moved and not self.config.live_phase:
            self.stack.restart_relay_worker()
            self.reload_proxy()

    def _publish(self, context: str, phase: Phase, timeout: float = 30.0) -> None:
        """Publish ``phase`` (no fence: a reset between tests) and wait for every replica."""
        control = self.environment().engine()
        state = publish(control, context, phase)
        routes = route_file_hash(self.config.routes_path)
        tally = wait_for_acks(control, Expectation(context, state.epoch, routes), timeout=timeout)
        if not tally.complete:
            raise AssertionError(f"{context}: replicas did not follow {phase}:\n{tally.describe()}")

    def ensure_fresh(self, context: str) -> None:
        """Before ``context`` enters dual_write again: discard what an earlier journey left.

        Its service processes and relay restart on a new service database (see
        :meth:`reset`); nothing happens for a context no journey has moved yet.
        """
        if self.phase(context) == "shared" and context in self.touched:
            self._start_afresh(context)

    def _start_afresh(self, context: str) -> None:
        """Discard what an earlier journey left of ``context``'s sync (it is in ``shared``)."""
        names = [replica_name(context, i) for i in range(self.config.replicas)]
        for name in (*names, f"relay-{context}"):
            process = self.stack.processes.pop(name, None)
            if process is not None:
                process.stop()
        self._discard_sync_state(context)
        self.stack.run_cli("service", "migrate", context)
        self.stack.start_context(self.plan(context))
        self.touched.discard(context)

    def _capture(self, context: str, *, enabled: bool) -> None:
        engine = relay_engine(self.config.monolith_db, pool_size=1)
        try:
            set_capture(engine, context, enabled=enabled)
        finally:
            engine.dispose()

    def _discard_sync_state(self, context: str) -> None:
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

    def fault(self, name: str, context: str | None = None) -> AbstractContextManager[None]:
        """Inject fault ``name`` for a ``with`` block, then recover (:meth:`Faults.inject`)."""
        return self.faults.inject(name, context)

    @property
    def active_faults(self) -> list[tuple[str, str | None]]:
        return self.faults.active

    def recover_all(self) -> None:
        """Undo every active fault; restart a context whose service or relay exited."""
        self.faults.recover_all()

    def assert_alive(self) -> None:
        """Fail naming every process that exited on its own (with the end of its log)."""
        dead = self.stack.dead()
        if dead:
            tails = "\n".join(
                f"{name}:\n{self.stack.processes[name].log_tail(15)}" for name in dead
            )
            raise AssertionError(f"processes exited on their own: {', '.join(dead)}\n{tails}")
