"""The live phase of each context: published by the control plane, followed by every replica.

The control plane publishes a :class:`PhaseState` per context in the control database:
the phase, an ``epoch`` raised by every publication, and whether the context's writes
are fenced (proxies hold them) and until when. Proxies, services and relays follow it
while they run with a :class:`PhaseFollower`, woken by a push (Redis pub/sub on
``strangler_phase`` when ``STRANGLER_REDIS_URL`` is set, else PostgreSQL ``NOTIFY
strangler_phase``) and polling otherwise (SQLite), so no transition restarts a process.

    state = publish(engine, "catalog", Phase.SPLIT, fence_seconds=2.0)
    follower = PhaseFollower(control_db_url(), on_change=serve).start()
    follower.current("catalog").phase
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Float,
    MetaData,
    String,
    Table,
    insert,
    text,
    update,
)
from sqlalchemy import (
    select as sql_select,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from migration_plans.core.database import create_tables_once, is_sqlite, libpq_url, sqlalchemy_url
from migration_plans.core.database import engine as make_engine
from migration_plans.core.phase import Phase
from migration_plans.core.settings import context_env

__all__ = [
    "LIVE_PHASE_ENV",
    "PHASE_CHANNEL",
    "PhaseFollower",
    "PhaseGate",
    "PhaseState",
    "create_phase_tables",
    "follows_published_phase",
    "live_phase_enabled",
    "publish",
    "read_state",
    "read_states",
    "seed",
]

log = logging.getLogger("strangler.phase")

CONNECT_TIMEOUT_S = 3
"""A control database that does not answer never stalls a process's start or its beat."""

PHASE_CHANNEL = "strangler_phase"
POLL_ENV = "STRANGLER_PHASE_POLL_INTERVAL"
POLL_WITHOUT_PUSH_S = 0.05
"""SQLite has no push: a follower reads the one-row-per-context table this often."""
POLL_WITH_PUSH_S = 1.0
"""With a push, polling only catches a lost notification or a reconnect."""

LIVE_PHASE_ENV = "STRANGLER_LIVE_PHASE"
"""``off``: no process follows the published phase (each serves the phase it starts in)."""


def live_phase_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether processes follow the published phase (``STRANGLER_LIVE_PHASE`` is not ``off``)."""
    environ = os.environ if environ is None else environ
    return environ.get(LIVE_PHASE_ENV, "").strip().lower() != "off"


def follows_published_phase(context: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``context``'s processes follow the published phase: live phase on and the
    phase not pinned by ``<CONTEXT>_PHASE`` / ``STRANGLER_PHASE``."""
    environ = os.environ if environ is None else environ
    return live_phase_enabled(environ) and not context_env(context, "PHASE", environ=environ)


phase_metadata = MetaData()
phase_state_table = Table(
    "strangler_phase_state",
    phase_metadata,
    Column("context", String(64), primary_key=True),
    Column("phase", String(16), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("fenced", Boolean, nullable=False, default=False),
    Column("fence_until", Float, nullable=True),
    Column("updated_at", Float, nullable=False),
)


@dataclass(frozen=True)
class PhaseState:
    """One context's published phase.

    ``fenced``: proxies hold the context's unsafe requests until a later epoch lifts
    the fence or the wall clock passes ``fence_until`` (a fence its control plane
    abandoned expires by itself).
    """

    context: str
    phase: Phase
    epoch: int
    fenced: bool = False
    fence_until: float | None = None
    updated_at: float = 0.0

    def holds_writes(self, now: float | None = None) -> bool:
        """Whether unsafe requests of the context wait now."""
        if not self.fenced:
            return False
        return self.fence_until is None or (time.time() if now is None else now) < self.fence_until

    def as_dict(self) -> dict[str, Any]:
        return {
            "context": self.context,
            "phase": self.phase.value,
            "epoch": self.epoch,
            "fenced": self.fenced,
            "fence_until": self.fence_until,
            "updated_at": self.updated_at,
        }


def create_phase_tables(engine: Engine) -> None:
    """Create the phase-state table once per database (idempotent)."""
    create_tables_once(engine, phase_metadata)


def _state(row: Any) -> PhaseState:
    return PhaseState(
        context=row.context,
        phase=Phase(row.phase),
        epoch=int(row.epoch),
        fenced=bool(row.fenced),
        fence_until=row.fence_until,
        updated_at=float(row.updated_at),
    )


def read_states(engine: Engine) -> dict[str, PhaseState]:
    """Every published state, by context."""
    create_phase_tables(engine)
    with engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
        rows = conn.execute(sql_select(phase_state_table)).all()
    return {row.context: _state(row) for row in rows}


def read_state(engine: Engine, context: str) -> PhaseState | None:
    """The published state of ``context`` (None before the first publication)."""
    create_phase_tables(engine)
    statement = sql_select(phase_state_table).where(phase_state_table.c.context == context)
    with engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
        row = conn.execute(statement).first()
    return None if row is None else _state(row)


def seed(engine: Engine, context: str, phase: Phase) -> PhaseState:
    """Publish ``phase`` at epoch 1 unless ``context`` already has a state; the state now."""
    existing = read_state(engine, context)
    if existing is not None:
        return existing
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(phase_state_table).values(
                    context=context,
                    phase=phase.value,
                    epoch=1,
                    fenced=False,
                    fence_until=None,
                    updated_at=time.time(),
                )
            )
            _notify(conn, context, 1)
    except IntegrityError:
        pass  # another process seeded it first
    state = read_state(engine, context)
    assert state is not None
    _push_redis(state)
    return state


def publish(
    engine: Engine, context: str, phase: Phase, *, fence_seconds: float | None = None
) -> PhaseState:
    """Publish ``phase`` for ``context`` under the next epoch; the published state.

    ``fence_seconds``: hold the context's writes for at most this long from now
    (None: no fence). The epoch is raised in the same transaction as the NOTIFY, so a
    follower woken by it always reads this state or a later one.
    """
    create_phase_tables(engine)
    now = time.time()
    fence_until = None if fence_seconds is None else now + fence_seconds
    values = {
        "phase": phase.value,
        "fenced": fence_seconds is not None,
        "fence_until": fence_until,
        "updated_at": now,
    }
    table = phase_state_table
    for _ in range(3):
        try:
            with engine.begin() as conn:
                changed = conn.execute(
                    update(table)
                    .where(table.c.context == context)
                    .values(epoch=table.c.epoch + 1, **values)
                    .returning(table.c.epoch)
                ).first()
                epoch = int(changed.epoch) if changed is not None else 1
                if changed is None:
                    conn.execute(insert(table).values(context=context, epoch=1, **values))
                _notify(conn, context, epoch)
            break
        except IntegrityError:
            continue  # a concurrent first publication inserted the row: raise its epoch
    else:
        raise RuntimeError(f"{context}: could not publish the phase (concurrent publishers)")
    state = PhaseState(context, phase, epoch, fence_seconds is not None, fence_until, now)
    _push_redis(state)
    log.info(
        "published %s %s epoch %d%s",
        context,
        phase.value,
        epoch,
        " (writes fenced)" if state.fenced else "",
        extra={"event": "phase_published", "context": context, "epoch": epoch},
    )
    return state


def _notify(conn: Any, context: str, epoch: int) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": PHASE_CHANNEL, "payload": f"{context}:{epoch}"},
        )


def _redis_push_url() -> str | None:
    return os.environ.get("STRANGLER_REDIS_URL") or None


def _push_redis(state: PhaseState) -> None:
    """Announce ``state`` on Redis too; best effort (followers poll as well)."""
    url = _redis_push_url()
    if url is None:
        return
    try:
        # lazy: redis is only needed where Redis pub/sub is configured
        import redis

        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            client.publish(PHASE_CHANNEL, f"{state.context}:{state.epoch}")
        finally:
            client.close()
    except Exception as exc:
        log.warning("could not announce %s epoch %d on Redis: %s", state.context, state.epoch, exc)


class _Push:
    """Waits for a push or a timeout; reconnects lazily. Redis pub/sub where
    ``STRANGLER_REDIS_URL`` is set (publications go to both), else PostgreSQL LISTEN."""

    def __init__(self, url: str, redis_url: str | None) -> None:
        self.pg_url = None if is_sqlite(sqlalchemy_url(url)) else libpq_url(url)
        self.redis_url = redis_url
        self._pg: psycopg.Connection[Any] | None = None
        self._redis: Any = None

    @property
    def available(self) -> bool:
        return self.pg_url is not None or self.redis_url is not None

    def wait(self, timeout: float) -> None:
        self._connect()
        if self._pg is not None and not self._pg.closed:
            with suppress(OSError, ValueError):
                select.select([self._pg.fileno()], [], [], timeout)
            try:
                for _ in self._pg.notifies(timeout=0, stop_after=1000):
                    pass
            except psycopg.Error:
                self._pg.close()
            return
        if self._redis is not None:
            try:
                message = self._redis.get_message(ignore_subscribe_messages=True, timeout=timeout)
                while message is not None:
                    message = self._redis.get_message(ignore_subscribe_messages=True, timeout=0)
            except Exception:
                self._close_redis()
            return
        time.sleep(timeout)

    def _connect(self) -> None:
        # Redis first where it is configured: every process keeps one listening
        # connection, and a PostgreSQL connection is the scarcer one (max_connections).
        if (
            self.redis_url is None
            and self.pg_url is not None
            and (self._pg is None or self._pg.closed)
        ):
            with suppress(psycopg.Error):
                self._pg = psycopg.connect(self.pg_url, autocommit=True, connect_timeout=3)
                self._pg.execute(f"LISTEN {PHASE_CHANNEL}")
            return
        if self.redis_url is not None and self._redis is None:
            try:
                # lazy: redis is only needed where Redis pub/sub is configured
                import redis

                client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=3)
                pubsub = client.pubsub()
                pubsub.subscribe(PHASE_CHANNEL)
                self._redis = pubsub
            except Exception as exc:
                log.warning("phase follower: Redis pub/sub unavailable (%s); polling", exc)

    def _close_redis(self) -> None:
        with suppress(Exception):
            self._redis.close()
        self._redis = None

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()
        if self._redis is not None:
            self._close_redis()


ChangeCallback = Callable[[PhaseState], None]


class PhaseFollower:
    """Follows the published states of ``contexts`` (default: all) in a daemon thread.

    :meth:`start` reads once before returning, so the caller serves the current phase
    from its first request; then ``on_change`` is called, in the follower's thread, for
    every state whose epoch is newer than the last one seen. A database that cannot be
    reached slows the follower down; it never stops it.
    """

    def __init__(
        self,
        url: str,
        on_change: ChangeCallback,
        *,
        contexts: Collection[str] | None = None,
        poll_interval: float | None = None,
        redis_url: str | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.url = sqlalchemy_url(url)
        self.engine = (
            engine
            if engine is not None
            else make_engine(self.url, pool_size=1, connect_timeout=CONNECT_TIMEOUT_S)
        )
        self.on_change = on_change
        self.contexts = None if contexts is None else frozenset(contexts)
        self._push = _Push(self.url, redis_url if redis_url is not None else _redis_push_url())
        default = POLL_WITH_PUSH_S if self._push.available else POLL_WITHOUT_PUSH_S
        configured = os.environ.get(POLL_ENV)
        self.poll_interval = poll_interval or (float(configured) if configured else default)
        self._states: dict[str, PhaseState] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="strangler-phase", daemon=True)

    def start(self) -> PhaseFollower:
        with suppress(SQLAlchemyError):
            self.refresh()
        self._thread.start()
        return self

    def current(self, context: str) -> PhaseState | None:
        """The newest state seen of ``context``."""
        with self._lock:
            return self._states.get(context)

    def states(self) -> dict[str, PhaseState]:
        with self._lock:
            return dict(self._states)

    def refresh(self) -> list[PhaseState]:
        """Read the table once; report and return the states with a newer epoch."""
        newer = []
        for context, state in read_states(self.engine).items():
            if self.contexts is not None and context not in self.contexts:
                continue
            with self._lock:
                seen = self._states.get(context)
                if seen is not None and seen.epoch >= state.epoch:
                    continue
                self._states[context] = state
            newer.append(state)
        for state in newer:
            try:
                self.on_change(state)
            except Exception:
                log.exception(
                    "phase follower: handling %s epoch %d failed", state.context, state.epoch
                )
        return newer

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._push.close()
        self.engine.dispose()

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.is_set():
            if delay:
                self._stop.wait(delay)
            else:
                self._push.wait(self.poll_interval)
            if self._stop.is_set():
                return
            try:
                self.refresh()
                delay = 0.0
            except SQLAlchemyError as exc:
                delay = min(2.0, max(0.1, delay * 2))
                log.warning("phase follower: control database unavailable (%s); retrying", exc)


class PhaseGate:
    """Passes hold the gate shared, a phase switch holds it alone.

    A switch waits for the passes in progress and holds new ones back until it is done,
    so no pass ever runs half under one phase and half under the next.

        with gate.passing(): ...      # one relay pass
        with gate.switching(): ...    # change the phase
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._passes = 0
        self._switching = False

    @contextmanager
    def passing(self) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: not self._switching)
            self._passes += 1
        try:
            yield
        finally:
            with self._changed:
                self._passes -= 1
                self._changed.notify_all()

    @contextmanager
    def switching(self) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: not self._switching)
            self._switching = True  # from here on, new passes wait (no starving switch)
            self._changed.wait_for(lambda: self._passes == 0)
        try:
            yield
        finally:
            with self._changed:
                self._switching = False
                self._changed.notify_all()
