"""Create and drop throwaway PostgreSQL databases for tests, benchmarks and phase replay.

Every test session gets databases of its own, created from ``STRANGLER_PG_URL`` and
dropped afterwards. Nothing at run time imports this module.

    admin = pg_admin_url()
    url = create_database(admin, unique_name("strangler_t"))
    drop_database(admin, name)
"""

from __future__ import annotations

import re
import uuid

import psycopg
from psycopg import sql

from migration_plans.core.database import libpq_url, pg_admin_url, redis_url, with_database

__all__ = [
    "DatabaseUnavailable",
    "check_server",
    "create_database",
    "drop_database",
    "lock_waiters",
    "pg_admin_url",
    "redis_url",
    "unique_name",
]

_SAFE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class DatabaseUnavailable(RuntimeError):
    """The PostgreSQL server at a URL cannot be reached."""


def unique_name(prefix: str = "strangler_t") -> str:
    """A database name nobody else is using."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def check_server(admin_url: str) -> None:
    """Raise :class:`DatabaseUnavailable` unless the server answers a query."""
    try:
        with psycopg.connect(libpq_url(admin_url), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise DatabaseUnavailable(f"PostgreSQL at {admin_url} is not reachable: {exc}") from exc


def create_database(admin_url: str, name: str) -> str:
    """Create database ``name``; return its URL."""
    if not _SAFE_NAME.match(name):
        raise ValueError(f"unsafe database name {name!r}")
    with psycopg.connect(libpq_url(admin_url), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(libpq_url(admin_url), name)


def drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name`` even if sessions are still connected to it."""
    with psycopg.connect(libpq_url(admin_url), autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def lock_waiters(url: str, *, running: str | None = None) -> int:
    """How many sessions of ``url``'s database wait for a lock now; with ``running``, only
    those whose statement contains that text. Tests that force an interleaving wait on it."""
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND strpos(query, %(running)s) > 0"
    )
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        row = conn.execute(query, {"running": running or ""}).fetchone()
    return int(row[0]) if row else 0
