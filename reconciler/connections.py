"""Engines for the monolith and service databases, with the session settings hashing needs.

Engines are :func:`migration_plans.core.database.engine` (one SQLite policy: WAL,
30 s busy timeout, foreign keys on), cached per URL so Celery workers reuse their
pools. Text renderings depend on session settings, so every PostgreSQL session the
reconciler opens also pins ``DateStyle`` to ISO and float output to shortest-exact.
SQLite transactions begin DEFERRED: the reconciler mostly reads, and its reads must
not take the write lock of a database the relay and the services write.

    engine = engine_for("postgresql://postgres@127.0.0.1/monolith")
    with snapshot(engine) as conn: ...
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event, make_url
from sqlalchemy.exc import SQLAlchemyError

from migration_plans.core import database
from migration_plans.core.database import sqlalchemy_url
from reconciler.exceptions import DatabaseError

_PG_SETTINGS = (
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1",
)


def _pin_session(dbapi_connection: Any, _record: Any) -> None:
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    with dbapi_connection.cursor() as cursor:
        for statement in _PG_SETTINGS:
            cursor.execute(statement)
    dbapi_connection.autocommit = autocommit


def require_database(url: str) -> None:
    """Refuse a SQLite file that does not exist (connecting would silently create it)."""
    parsed = make_url(sqlalchemy_url(url))
    database = parsed.database or ""
    in_file = parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:")
    if in_file and not Path(database).exists():
        raise DatabaseError(f"SQLite database {database} does not exist")


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def engine_for(url: str) -> Engine:
    """A pooled engine for ``url`` (``postgresql://`` or ``sqlite://``), cached per URL."""
    with _engines_lock:
        cached = _engines.get(url)
        if cached is None:
            engine = database.engine(url)
            if engine.dialect.name == "postgresql":
                event.listen(engine, "connect", _pin_session)
            cached = _engines[url] = engine.execution_options(sqlite_begin="DEFERRED")
        return cached


def dispose_engines() -> None:
    """Close every cached engine's pooled connections and forget the engines (a test
    suite or a finished phase replay gives its database connections back)."""
    with _engines_lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.dispose()


def server_major(engine: Engine) -> int | None:
    """PostgreSQL major version of ``engine``'s server (None for other databases)."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        info = conn.dialect.server_version_info
    return int(info[0]) if info else None


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only connection whose queries all see one snapshot.

    PostgreSQL: a REPEATABLE READ, READ ONLY transaction. SQLite: an explicit BEGIN
    (pysqlite would otherwise give each SELECT its own snapshot).
    """
    try:
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql("BEGIN")
                try:
                    yield conn
                finally:
                    conn.exec_driver_sql("COMMIT")
            return
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                yield conn
    except SQLAlchemyError as exc:
        raise DatabaseError(f"{engine.url.render_as_string(hide_password=True)}: {exc}") from exc
