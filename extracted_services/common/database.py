"""Engines for a service's own database and for read-only access to the monolith's.

- :func:`service_engine`: read-write; on SQLite a transaction begins IMMEDIATE (one
  writer at a time, no lock-upgrade deadlocks) unless it comes from
  :func:`read_session_factory` (DEFERRED: readers never wait for each other), with
  foreign keys enforced.
- :func:`readonly_engine`: the shared phase's window on the monolith. PostgreSQL
  sessions start with ``default_transaction_read_only=on`` and SQLite files are opened
  with ``mode=ro``, so the database itself refuses a write even if code attempted one.

    engine = readonly_engine("postgresql://.../monolith")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.request import pathname2url

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from migration_plans.core.database import sqlalchemy_url

_PG_OPTIONS = "-c TimeZone=UTC"


def is_sqlite(url: str | URL) -> bool:
    return make_url(sqlalchemy_url(str(url))).get_backend_name() == "sqlite"


def _sqlite_path(url: URL) -> str:
    database = url.database or ""
    if database.startswith("file:"):
        return database
    return "file:" + pathname2url(str(Path(database).resolve()))


def service_engine(url: str, *, echo: bool = False) -> Engine:
    """Read-write engine for a service's own database."""
    parsed = make_url(sqlalchemy_url(url))
    if parsed.get_backend_name() != "sqlite":
        return create_engine(
            parsed, echo=echo, pool_pre_ping=True, connect_args={"options": _PG_OPTIONS}
        )
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        parsed, echo=echo, connect_args={"check_same_thread": False, "timeout": 30}
    )
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event issues BEGIN
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
    connection.exec_driver_sql(f"BEGIN {mode}")


def readonly_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine through which the database refuses every write."""
    parsed = make_url(sqlalchemy_url(url))
    if parsed.get_backend_name() != "sqlite":
        options = f"{_PG_OPTIONS} -c default_transaction_read_only=on"
        return create_engine(
            parsed, echo=echo, pool_pre_ping=True, connect_args={"options": options}
        )
    readonly = URL.create(
        "sqlite", database=_sqlite_path(parsed), query={"mode": "ro", "uri": "true"}
    )
    return create_engine(
        readonly, echo=echo, connect_args={"check_same_thread": False, "timeout": 30}
    )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for writing; they keep loaded values after commit (responses are built after it)."""
    return sessionmaker(engine, expire_on_commit=False)


def read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for reading: on SQLite their transactions do not take the write lock."""
    return sessionmaker(engine.execution_options(sqlite_begin="DEFERRED"), expire_on_commit=False)
