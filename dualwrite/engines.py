"""Engines the relay and the backfill use on either side (PostgreSQL or SQLite).

PostgreSQL sessions run in UTC with a short connect timeout (an unreachable database
must fail fast, the relay retries). No pre-ping: it would cost a round trip per
checkout on the relay's hot path; a dead pooled connection fails once, is discarded,
and the relay retries. SQLite transactions begin IMMEDIATE, the same
single-writer discipline Django's settings use for the monolith.

    engine = relay_engine("postgresql://.../monolith")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from migration_plans.core.database import sqlalchemy_url


def relay_engine(url: str, *, pool_size: int = 5, async_commit: bool = False) -> Engine:
    """A read-write engine for ``url`` (``postgresql://`` or ``sqlite:///``).

    ``async_commit``: PostgreSQL sessions run with ``synchronous_commit = off`` (only
    for writes a crash may lose, such as the relay's outbox marks).
    """
    parsed = make_url(sqlalchemy_url(url))
    if parsed.get_backend_name() != "sqlite":
        options = "-c TimeZone=UTC" + (" -c synchronous_commit=off" if async_commit else "")
        return create_engine(
            parsed,
            pool_size=pool_size,
            connect_args={"options": options, "connect_timeout": 5},
        )
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 30})
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin_immediate)
    return engine


def _sqlite_connect(dbapi_connection: Any, record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")
