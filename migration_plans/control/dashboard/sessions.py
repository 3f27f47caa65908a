"""Dashboard sign-in sessions, kept in the control database so that every proxy worker
and replica honours the same ones (a sign-out on one ends the session on all).

A session id is random (``secrets.token_urlsafe(32)``) and has nothing to do with the
admin token; only its SHA-256 is stored, so a copy of the table signs nobody in. A
session ends ``idle`` seconds after its last use, ``lifetime`` seconds after sign-in,
or at sign-out, whichever comes first. A use is written at most every
:data:`TOUCH_EVERY` seconds (an open dashboard polls every few seconds). Expired rows
are deleted at each sign-in.

Blocking (SQLAlchemy): the dashboard calls it from a worker thread.

    store = SessionStore(idle=8 * 3600, lifetime=24 * 3600)   # STRANGLER_CONTROL_DB_URL
    session_id = store.create()
    store.valid(session_id)      # True, and notes the use
    store.revoke(session_id)
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable

from sqlalchemy import (
    Column,
    ColumnElement,
    Engine,
    Float,
    MetaData,
    String,
    Table,
    delete,
    insert,
    or_,
    select,
)
from sqlalchemy import update as sql_update
from sqlalchemy.exc import SQLAlchemyError

from migration_plans.core.control_db import control_engine
from migration_plans.core.database import create_tables_once

__all__ = ["SessionStore", "SessionStoreUnavailable", "sessions_table"]

TOUCH_EVERY = 60.0
"""Seconds between two writes of a session's last use (the idle limit's resolution)."""

session_metadata = MetaData()
sessions_table = Table(
    "strangler_dashboard_sessions",
    session_metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("seen_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)


class SessionStoreUnavailable(Exception):
    """The control database could not be read or written (the dashboard answers 503)."""


class SessionStore:
    """Sessions in the control database at ``url`` (default ``STRANGLER_CONTROL_DB_URL``,
    read on first use so that forked workers open their own connections)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        idle: float = 8 * 3600,
        lifetime: float = 24 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.idle = idle
        self.lifetime = lifetime
        self.clock = clock
        self._engine: Engine | None = None

    def create(self) -> str:
        """A new session's id (what the cookie carries)."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        row = {
            "id_hash": _digest(session_id),
            "created_at": now,
            "seen_at": now,
            "expires_at": now + self.lifetime,
        }
        with self._guard() as engine, engine.begin() as conn:
            conn.execute(delete(sessions_table).where(self._expired(now)))
            conn.execute(insert(sessions_table).values(**row))
        return session_id

    def valid(self, session_id: str) -> bool:
        """Whether ``session_id`` names a live session; notes the use."""
        if not session_id:
            return False
        key, now = _digest(session_id), self.clock()
        table = sessions_table
        with self._guard() as engine:
            with engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
                row = conn.execute(
                    select(table.c.seen_at, table.c.expires_at).where(table.c.id_hash == key)
                ).first()
            if row is None or now >= row.expires_at or now >= row.seen_at + self.idle:
                return False
            if now - row.seen_at >= TOUCH_EVERY:
                with engine.begin() as conn:
                    conn.execute(
                        sql_update(table).where(table.c.id_hash == key).values(seen_at=now)
                    )
        return True

    def revoke(self, session_id: str) -> None:
        """End ``session_id`` (unknown ids are ignored)."""
        if not session_id:
            return
        with self._guard() as engine, engine.begin() as conn:
            conn.execute(
                delete(sessions_table).where(sessions_table.c.id_hash == _digest(session_id))
            )

    def _expired(self, now: float) -> ColumnElement[bool]:
        table = sessions_table
        return or_(table.c.expires_at <= now, table.c.seen_at <= now - self.idle)

    def _guard(self) -> _Guarded:
        if self._engine is None:
            try:
                self._engine = control_engine(self.url)
            except (SQLAlchemyError, OSError) as exc:
                raise SessionStoreUnavailable(
                    f"dashboard sessions: control database {self.url or '(environment)'} "
                    f"cannot be opened: {exc}"
                ) from exc
        return _Guarded(self._engine)


class _Guarded:
    """``with`` block over the engine that turns database errors into
    :class:`SessionStoreUnavailable` (creating the table on first use)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __enter__(self) -> Engine:
        try:
            create_tables_once(self.engine, session_metadata)
        except SQLAlchemyError as exc:
            raise SessionStoreUnavailable(_describe(self.engine, exc)) from exc
        return self.engine

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, SQLAlchemyError):
            raise SessionStoreUnavailable(_describe(self.engine, exc)) from exc


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _describe(engine: Engine, exc: SQLAlchemyError) -> str:
    where = engine.url.render_as_string(hide_password=True)
    return f"dashboard sessions: control database {where} failed: {type(exc).__name__}: {exc}"
