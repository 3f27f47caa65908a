"""Every running proxy, service and relay process: registered, heartbeating, acknowledging.

Each replica keeps one row in the control database's ``strangler_replicas`` table:
who it is (role, context, address, host, pid), when it last beat, and what it serves:
the phase epoch per context and, for a proxy, the route table's hash and generation,
or a NACK naming the table it refused and why. The control plane reads the rows to
move a transition step by step only when every live replica has acknowledged.

    reporter = ReplicaReporter(url, Role.SERVICE, context="catalog",
                               address="http://127.0.0.1:8101", snapshot=current_ack)
    reporter.start()          # registers, then beats every second
    reporter.report_now()     # after a switch: acknowledge without waiting for the beat
    reporter.stop()           # deregisters
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from migration_plans.core.database import create_tables_once, sqlalchemy_url
from migration_plans.core.database import engine as make_engine

__all__ = [
    "Ack",
    "Nack",
    "Replica",
    "ReplicaReporter",
    "Role",
    "create_replica_tables",
    "forget_processes",
    "forget_replicas",
    "list_replicas",
    "silent_after",
]

log = logging.getLogger("strangler.replicas")

CONNECT_TIMEOUT_S = 3
"""A control database that does not answer never stalls a process's start or its beat."""

HEARTBEAT_ENV = "STRANGLER_REPLICA_HEARTBEAT"
SILENT_ENV = "STRANGLER_REPLICA_SILENT_AFTER"
DEFAULT_HEARTBEAT_S = 1.0
DEFAULT_SILENT_AFTER_S = 5.0

replica_metadata = MetaData()
replicas_table = Table(
    "strangler_replicas",
    replica_metadata,
    Column("instance", String(160), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("context", String(64), nullable=False, default=""),
    Column("address", String(255), nullable=False, default=""),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("epochs", Text, nullable=False, default="{}"),
    Column("route_hash", String(64), nullable=True),
    Column("route_generation", Integer, nullable=True),
    Column("nack", Text, nullable=True),
)


class Role(StrEnum):
    """What a replica is."""

    PROXY = "proxy"
    SERVICE = "service"
    RELAY = "relay"
    #: A monolith process whose ports call the contexts' services (it follows every context).
    MONOLITH = "monolith"


@dataclass(frozen=True)
class Nack:
    """A route table a proxy refused to serve, and why."""

    route_hash: str
    reason: str


@dataclass(frozen=True)
class Ack:
    """What a replica serves now: the phase epoch per context, its route table (proxies)."""

    epochs: Mapping[str, int] = field(default_factory=dict)
    route_hash: str | None = None
    route_generation: int | None = None
    nack: Nack | None = None


@dataclass(frozen=True)
class Replica:
    """One registered process, as its row says."""

    instance: str
    role: Role
    context: str
    address: str
    hostname: str
    pid: int
    started_at: float
    heartbeat_at: float
    ack: Ack

    def silent(self, now: float | None = None, after: float | None = None) -> bool:
        """No heartbeat for ``after`` seconds (default :func:`silent_after`)."""
        limit = silent_after() if after is None else after
        return (time.time() if now is None else now) - self.heartbeat_at > limit

    def serves(self, context: str) -> bool:
        """Whether this replica acts for ``context`` (proxies and monoliths act for every one)."""
        return self.role in (Role.PROXY, Role.MONOLITH) or self.context == context

    def epoch(self, context: str) -> int | None:
        return self.ack.epochs.get(context)

    def as_dict(self, now: float | None = None) -> dict[str, Any]:
        moment = time.time() if now is None else now
        return {
            "instance": self.instance,
            "role": self.role.value,
            "context": self.context or None,
            "address": self.address or None,
            "hostname": self.hostname,
            "pid": self.pid,
            "heartbeat_age_s": round(moment - self.heartbeat_at, 2),
            "silent": self.silent(moment),
            "epochs": dict(self.ack.epochs),
            "route_hash": self.ack.route_hash,
            "route_generation": self.ack.route_generation,
            "nack": None
            if self.ack.nack is None
            else {"route_hash": self.ack.nack.route_hash, "reason": self.ack.nack.reason},
        }


def silent_after() -> float:
    """Seconds without a heartbeat after which a replica counts as silent."""
    return float(os.environ.get(SILENT_ENV) or DEFAULT_SILENT_AFTER_S)


def create_replica_tables(engine: Engine) -> None:
    """Create the registry table once per database (idempotent)."""
    create_tables_once(engine, replica_metadata)


def _replica(row: Any) -> Replica:
    nack = json.loads(row.nack) if row.nack else None
    return Replica(
        instance=row.instance,
        role=Role(row.role),
        context=row.context,
        address=row.address,
        hostname=row.hostname,
        pid=int(row.pid),
        started_at=float(row.started_at),
        heartbeat_at=float(row.heartbeat_at),
        ack=Ack(
            epochs={str(k): int(v) for k, v in json.loads(row.epochs or "{}").items()},
            route_hash=row.route_hash,
            route_generation=row.route_generation,
            nack=None if nack is None else Nack(nack["route_hash"], nack["reason"]),
        ),
    )


def list_replicas(engine: Engine, *, context: str | None = None) -> list[Replica]:
    """Every registered replica (those acting for ``context`` when given), oldest first."""
    create_replica_tables(engine)
    with engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
        rows = conn.execute(select(replicas_table).order_by(replicas_table.c.started_at)).all()
    replicas = [_replica(row) for row in rows]
    return replicas if context is None else [r for r in replicas if r.serves(context)]


def forget_replicas(engine: Engine, instances: Iterable[str]) -> int:
    """Remove replicas from the registry (silent ones left out of a transition)."""
    names = list(instances)
    if not names:
        return 0
    create_replica_tables(engine)
    with engine.begin() as conn:
        result = conn.execute(delete(replicas_table).where(replicas_table.c.instance.in_(names)))
    return int(result.rowcount or 0)


def forget_processes(engine: Engine, hostname: str, pids: Iterable[int]) -> int:
    """Remove the rows of processes a supervisor saw exit (they cannot deregister themselves).

    Without this a killed replica counts as live until its heartbeat is
    :func:`silent_after` seconds old, and a transition started meanwhile waits for it.
    """
    numbers = list(pids)
    if not numbers:
        return 0
    create_replica_tables(engine)
    table = replicas_table
    with engine.begin() as conn:
        result = conn.execute(
            delete(table).where(table.c.hostname == hostname, table.c.pid.in_(numbers))
        )
    return int(result.rowcount or 0)


def _ack_values(ack: Ack) -> dict[str, Any]:
    return {
        "epochs": json.dumps(dict(ack.epochs), sort_keys=True),
        "route_hash": ack.route_hash,
        "route_generation": ack.route_generation,
        "nack": None
        if ack.nack is None
        else json.dumps({"route_hash": ack.nack.route_hash, "reason": ack.nack.reason}),
    }


class ReplicaReporter:
    """Registers this process and reports its :class:`Ack` with every heartbeat.

    The heartbeat runs in a daemon thread; :meth:`report_now` wakes it at once (a
    replica that just switched acknowledges without waiting for the next beat). A
    control database that cannot be reached is logged and retried at the next beat.
    """

    def __init__(
        self,
        url: str,
        role: Role,
        *,
        snapshot: Callable[[], Ack],
        context: str = "",
        address: str = "",
        interval: float | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.engine = (
            engine
            if engine is not None
            else make_engine(sqlalchemy_url(url), pool_size=1, connect_timeout=CONNECT_TIMEOUT_S)
        )
        self.role = role
        self.context = context
        self.address = address
        self.snapshot = snapshot
        self.interval = interval or float(os.environ.get(HEARTBEAT_ENV) or DEFAULT_HEARTBEAT_S)
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.instance = (
            f"{role.value}:{context or 'all'}:{self.hostname}:{self.pid}:{secrets.token_hex(2)}"
        )
        self.started_at = time.time()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="strangler-replica", daemon=True)

    def start(self) -> ReplicaReporter:
        """Register now (logged, not raised, when the database is down) and start beating."""
        self._beat()
        self._thread.start()
        return self

    def report_now(self) -> None:
        """Report the current :class:`Ack` without waiting for the next heartbeat."""
        self._wake.set()

    def stop(self) -> None:
        """Stop beating and deregister (a clean stop is never a silent replica)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        try:
            forget_replicas(self.engine, [self.instance])
        except SQLAlchemyError as exc:
            log.warning("replica %s: could not deregister: %s", self.instance, exc)
        self.engine.dispose()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            self._beat()

    def _beat(self) -> None:
        try:
            self.write(self.snapshot())
        except SQLAlchemyError as exc:
            log.warning("replica %s: heartbeat failed: %s", self.instance, exc)
        except Exception:
            log.exception("replica %s: heartbeat failed", self.instance)

    def write(self, ack: Ack) -> None:
        """Upsert this replica's row with ``ack`` and a fresh heartbeat."""
        create_replica_tables(self.engine)
        now = time.time()
        values = {"heartbeat_at": now, **_ack_values(ack)}
        table = replicas_table
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(table).where(table.c.instance == self.instance).values(**values)
            ).rowcount
            if not changed:
                conn.execute(
                    insert(table).values(
                        instance=self.instance,
                        role=self.role.value,
                        context=self.context,
                        address=self.address,
                        hostname=self.hostname,
                        pid=self.pid,
                        started_at=self.started_at,
                        **values,
                    )
                )
