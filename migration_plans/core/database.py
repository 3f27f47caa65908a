"""Database URLs and engines: one spelling of URLs, one engine factory, one SQLite policy.

Every package opens its databases through :func:`engine`, so PostgreSQL sessions are
pinned to UTC and SQLite files get the same journal, busy timeout, foreign keys and
transaction mode wherever they are opened.

    writer = engine("sqlite:///var/catalog.sqlite3")          # BEGIN IMMEDIATE
    reader = engine(url, read_only=True)                       # refuses every write
    conn.execution_options(sqlite_begin="DEFERRED")            # a reading transaction
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from urllib.request import pathname2url

from sqlalchemy import URL, Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, ProgrammingError

__all__ = [
    "DEFAULT_PG_URL",
    "DEFAULT_REDIS_URL",
    "SQLITE_BUSY_TIMEOUT_S",
    "create_tables_once",
    "engine",
    "is_sqlite",
    "libpq_url",
    "pg_admin_url",
    "redis_url",
    "sqlalchemy_url",
    "with_database",
]

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
SQLITE_BUSY_TIMEOUT_S = 30
_PG_SESSION = "-c TimeZone=UTC"


def pg_admin_url() -> str:
    """The PostgreSQL URL tests and tools use to create databases (``STRANGLER_PG_URL``)."""
    return os.environ.get("STRANGLER_PG_URL", DEFAULT_PG_URL)


def redis_url() -> str:
    """The Redis URL tests and tools use (``STRANGLER_REDIS_URL``)."""
    return os.environ.get("STRANGLER_REDIS_URL", DEFAULT_REDIS_URL)


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def sqlalchemy_url(url: str) -> str:
    """A ``postgresql://`` or ``sqlite://`` URL spelled for SQLAlchemy with psycopg 3."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def libpq_url(url: str) -> str:
    """A SQLAlchemy-style PostgreSQL URL spelled for libpq/psycopg."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


def is_sqlite(url: str | URL) -> bool:
    """Whether ``url`` names a SQLite database."""
    return make_url(sqlalchemy_url(str(url))).get_backend_name() == "sqlite"


_created: set[tuple[str, int]] = set()
_created_lock = threading.Lock()


def create_tables_once(engine: Engine, metadata: MetaData) -> None:
    """Create ``metadata``'s tables in ``engine``'s database, once per process (idempotent).

    Another process may create them between the check and the CREATE (PostgreSQL
    reports that race as a unique violation on ``pg_type``): then they exist, and a
    second checked pass finds them.
    """
    key = (str(engine.url), id(metadata))
    with _created_lock:
        if key in _created:
            return
        try:
            metadata.create_all(engine, checkfirst=True)
        except (IntegrityError, ProgrammingError):
            metadata.create_all(engine, checkfirst=True)
        _created.add(key)


def engine(
    url: str | URL,
    *,
    read_only: bool = False,
    pool_size: int | None = None,
    async_commit: bool = False,
    connect_timeout: int | None = None,
    echo: bool = False,
    pre_ping: bool = True,
) -> Engine:
    """An engine for ``url`` (``postgresql://`` or ``sqlite:///``) with the toolkit's policy.

    PostgreSQL: sessions in UTC; ``read_only`` sets ``default_transaction_read_only``;
    ``async_commit`` sets ``synchronous_commit=off`` (only for writes a crash may lose);
    ``pre_ping=False`` saves a round trip per checkout where a hot path retries anyway.
    SQLite: the file's folder is created, WAL journal, a 30 s busy timeout, foreign keys on,
    and ``BEGIN IMMEDIATE`` for every transaction unless the connection's execution option
    ``sqlite_begin`` says otherwise (``"DEFERRED"`` for readers); ``read_only`` opens the
    file with ``mode=ro`` and begins DEFERRED.
    """
    parsed = make_url(sqlalchemy_url(str(url)))
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, read_only=read_only, echo=echo)
    options = _PG_SESSION
    if read_only:
        options += " -c default_transaction_read_only=on"
    if async_commit:
        options += " -c synchronous_commit=off"
    connect_args: dict[str, Any] = {"options": options}
    if connect_timeout is not None:
        connect_args["connect_timeout"] = connect_timeout
    kwargs: dict[str, Any] = {"pool_size": pool_size} if pool_size is not None else {}
    return create_engine(
        parsed, echo=echo, pool_pre_ping=pre_ping, connect_args=connect_args, **kwargs
    )


def _sqlite_engine(parsed: URL, *, read_only: bool, echo: bool) -> Engine:
    in_file = parsed.database not in (None, "", ":memory:")
    if read_only and in_file:
        parsed = URL.create(
            "sqlite", database=_sqlite_file_uri(parsed), query={"mode": "ro", "uri": "true"}
        )
    elif in_file and not str(parsed.database).startswith("file:"):
        Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
    created = create_engine(
        parsed,
        echo=echo,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
    )
    event.listen(created, "connect", _sqlite_read_only_connect if read_only else _sqlite_connect)
    event.listen(created, "begin", _sqlite_begin)
    # A read-only file cannot take the write lock that BEGIN IMMEDIATE asks for.
    return created.execution_options(sqlite_begin="DEFERRED") if read_only else created


def _sqlite_file_uri(url: URL) -> str:
    database = url.database or ""
    if database.startswith("file:"):
        return database
    return "file:" + pathname2url(str(Path(database).resolve()))


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # the "begin" listener issues BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_read_only_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    options = connection.get_execution_options()
    if options.get("isolation_level") == "AUTOCOMMIT":
        return
    mode = options.get("sqlite_begin", "IMMEDIATE")
    if mode not in ("IMMEDIATE", "DEFERRED", "EXCLUSIVE"):
        raise ValueError(f"sqlite_begin must be IMMEDIATE, DEFERRED or EXCLUSIVE, not {mode!r}")
    connection.exec_driver_sql(f"BEGIN {mode}")
