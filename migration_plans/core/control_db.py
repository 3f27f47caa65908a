"""The control-plane database: plan transition history (and other packages' run records).

One SQLAlchemy URL, ``STRANGLER_CONTROL_DB_URL`` (default: SQLite under ``./var``);
tables are created idempotently on first use. The engine follows the toolkit's one
database policy (:func:`migration_plans.core.database.engine`).

    engine = control_engine()
"""

from __future__ import annotations

import os
import threading

from sqlalchemy import Engine

from migration_plans.core.database import engine, sqlalchemy_url

__all__ = ["DEFAULT_CONTROL_DB", "control_db_url", "control_engine", "dispose_control_engines"]

DEFAULT_CONTROL_DB = "sqlite:///var/control.sqlite3"


def control_db_url() -> str:
    """The control-plane database URL from the environment."""
    return sqlalchemy_url(os.environ.get("STRANGLER_CONTROL_DB_URL", DEFAULT_CONTROL_DB))


def control_engine(url: str | None = None) -> Engine:
    """A shared engine for ``url`` (default :func:`control_db_url`, read at each call)."""
    return _shared_engine(sqlalchemy_url(url or control_db_url()))


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _shared_engine(url: str) -> Engine:
    with _engines_lock:
        cached = _engines.get(url)
        if cached is None:
            cached = _engines[url] = engine(url)
        return cached


def dispose_control_engines() -> None:
    """Close the shared control-plane engines' pooled connections and forget them."""
    with _engines_lock:
        engines = list(_engines.values())
        _engines.clear()
    for cached in engines:
        cached.dispose()
