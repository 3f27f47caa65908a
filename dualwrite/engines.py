"""Engines the relay and the backfill use on either side (PostgreSQL or SQLite).

A thin layer over :func:`migration_plans.core.database.engine` (UTC sessions; SQLite:
WAL, 30 s busy timeout, ``BEGIN IMMEDIATE``, the single-writer discipline Django's
settings use for the monolith). The relay adds a short connect timeout (an
unreachable database must fail fast, the relay retries) and no pre-ping: it would
cost a round trip per checkout on the relay's hot path; a dead pooled connection
fails once, is discarded, and the relay retries.

    engine = relay_engine("postgresql://.../monolith")
"""

from __future__ import annotations

from sqlalchemy import Engine

from migration_plans.core.database import engine

__all__ = ["relay_engine"]

CONNECT_TIMEOUT_S = 5


def relay_engine(url: str, *, pool_size: int = 5, async_commit: bool = False) -> Engine:
    """A read-write engine for ``url`` (``postgresql://`` or ``sqlite:///``).

    ``async_commit``: PostgreSQL sessions run with ``synchronous_commit = off`` (only
    for writes a crash may lose, such as the relay's outbox marks).
    """
    return engine(
        url,
        pool_size=pool_size,
        async_commit=async_commit,
        connect_timeout=CONNECT_TIMEOUT_S,
        pre_ping=False,
    )
