"""Which shadow results store a process uses: SQL (the embedded default) or Redis.

One rule for the proxy's mirror, ``strangler shadow`` and the plan gates, so they all
read and write the same results:

1. ``STRANGLER_SHADOW_STORE_URL``: ``redis://...`` (or ``rediss://``, ``unix://``) is
   Redis, anything else a SQLAlchemy URL (``sqlite:///...``, ``postgresql://...``);
2. else ``STRANGLER_SHADOW_STORE=redis`` (``STRANGLER_SHADOW_REDIS_URL``, else
   ``STRANGLER_REDIS_URL``, else the local default) or ``=sql`` (the control-plane
   database, ``STRANGLER_CONTROL_DB_URL``);
3. else Redis when ``STRANGLER_SHADOW_REDIS_URL`` or ``STRANGLER_REDIS_URL`` is set,
   the control-plane database (SQLite under ``./var`` by default) otherwise.

    store = open_store()                       # from the environment
    store = open_store("sqlite:///var/control.sqlite3", prefix="strangler:shadow")
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from migration_plans.core.control_db import DEFAULT_CONTROL_DB
from migration_plans.core.database import DEFAULT_REDIS_URL
from strangler_proxy.shadow._store_sql import SqlShadowStore
from strangler_proxy.shadow.store import DEFAULT_PREFIX, Counts, RedisShadowStore, ShadowResults

__all__ = ["close_store", "is_redis_url", "match_rate", "open_store", "shadow_counts", "store_url"]

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def is_redis_url(url: str) -> bool:
    """Whether ``url`` names a Redis server (else it is a SQLAlchemy URL)."""
    return url.startswith(_REDIS_SCHEMES)


def _redis_from(env: Mapping[str, str]) -> str | None:
    return env.get("STRANGLER_SHADOW_REDIS_URL") or env.get("STRANGLER_REDIS_URL") or None


def store_url(environ: Mapping[str, str] | None = None) -> str:
    """The results store's URL under the rule in this module's docstring."""
    env = os.environ if environ is None else environ
    explicit = env.get("STRANGLER_SHADOW_STORE_URL", "").strip()
    if explicit:
        return explicit
    kind = env.get("STRANGLER_SHADOW_STORE", "").strip().lower()
    if kind not in ("", "sql", "redis"):
        raise ValueError(f"STRANGLER_SHADOW_STORE={kind!r}: use sql or redis")
    redis_url = _redis_from(env)
    if kind == "redis" or (kind == "" and redis_url):
        return redis_url or DEFAULT_REDIS_URL
    return env.get("STRANGLER_CONTROL_DB_URL") or DEFAULT_CONTROL_DB


def open_store(
    url: str | None = None,
    *,
    prefix: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> RedisShadowStore | SqlShadowStore:
    """The store at ``url`` (default :func:`store_url`), under ``prefix``.

    ``prefix`` defaults to ``STRANGLER_SHADOW_PREFIX``: the Redis key prefix, or the
    SQL store's namespace column.
    """
    env = os.environ if environ is None else environ
    url = url or store_url(env)
    prefix = prefix or env.get("STRANGLER_SHADOW_PREFIX") or DEFAULT_PREFIX
    if is_redis_url(url):
        return RedisShadowStore.from_url(url, prefix=prefix)
    return SqlShadowStore.from_url(url, prefix=prefix)


def close_store(store: ShadowResults) -> None:
    """Release what a store opened by :func:`open_store` holds."""
    if isinstance(store, RedisShadowStore):
        store.client.close()


def match_rate(
    *,
    route: str | None = None,
    context: str | None = None,
    since: float | None = None,
    redis_url: str | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> tuple[float | None, int]:
    """What the plan gates read: ``(rate, compared)`` from the results store.

    ``redis_url`` picks a Redis store; without it the store is the one the
    environment selects (the rule in this module's docstring: SQL by default).
    The rate is None when nothing was compared yet (a gate then fails on its minimum
    sample count).
    """
    counts = shadow_counts(
        route=route, context=context, since=since, redis_url=redis_url, prefix=prefix
    )
    return counts.match_rate, counts.compared


def shadow_counts(
    *,
    route: str | None = None,
    context: str | None = None,
    since: float | None = None,
    redis_url: str | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> Counts:
    """Every counter (compared, matched, dropped, shed, ...) from the results store that
    :func:`match_rate` reads: what a gate's evidence shows next to its sample count."""
    store = open_store(redis_url, prefix=None if prefix == DEFAULT_PREFIX else prefix)
    try:
        return store.counts(route=route, context=context, since=since)
    finally:
        close_store(store)
