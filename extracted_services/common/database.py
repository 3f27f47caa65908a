"""Engines for a service's own database and for read-only access to the monolith's.

Both are :func:`migration_plans.core.database.engine` (UTC sessions; SQLite: WAL, 30 s
busy timeout, foreign keys enforced):

- :func:`service_engine`: read-write; on SQLite a transaction begins IMMEDIATE (one
  writer at a time, no lock-upgrade deadlocks) unless it comes from
  :func:`read_session_factory` (DEFERRED: readers never wait for each other).
- :func:`readonly_engine`: the shared phase's window on the monolith. PostgreSQL
  sessions start with ``default_transaction_read_only=on`` and SQLite files are opened
  with ``mode=ro``, so the database itself refuses a write even if code attempted one.

    engine = readonly_engine("postgresql://.../monolith")
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from migration_plans.core import database

__all__ = ["read_session_factory", "readonly_engine", "service_engine", "session_factory"]


def service_engine(url: str, *, echo: bool = False) -> Engine:
    """Read-write engine for a service's own database."""
    return database.engine(url, echo=echo)


def readonly_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine through which the database refuses every write."""
    return database.engine(url, read_only=True, echo=echo)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for writing; they keep loaded values after commit (responses are built after it)."""
    return sessionmaker(engine, expire_on_commit=False)


def read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for reading: on SQLite their transactions do not take the write lock."""
    return sessionmaker(engine.execution_options(sqlite_begin="DEFERRED"), expire_on_commit=False)
