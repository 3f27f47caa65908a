"""Create and drop throwaway PostgreSQL databases; translate URLs between drivers.

Used by the test fixtures and the phase-replay plugin: every test session gets
databases of its own, created from ``STRANGLER_PG_URL`` and dropped afterwards.

    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    url = create_database(admin, "strangler_t_1234")
    drop_database(admin, "strangler_t_1234")
"""

from __future__ import annotations

import os
import re
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

_SAFE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class DatabaseUnavailable(RuntimeError):
    """The PostgreSQL server at a URL cannot be reached."""


def pg_admin_url() -> str:
    """The PostgreSQL URL tests and tools use to create databases."""
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
