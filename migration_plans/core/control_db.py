"""The control-plane database: plan transition history (and other packages' run records).

One SQLAlchemy URL, ``STRANGLER_CONTROL_DB_URL`` (default: SQLite under ``./var``);
tables are created idempotently on first use.

    engine = control_engine()
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine

from migration_plans.core.database import sqlalchemy_url

DEFAULT_CONTROL_DB = "sqlite:///var/control.sqlite3"


def control_db_url() -> str:
    """The control-plane database URL from the environment."""
    return sqlalchemy_url(os.environ.get("STRANGLER_CONTROL_DB_URL", DEFAULT_CONTROL_DB))


@lru_cache(maxsize=8)
def control_engine(url: str | None = None) -> Engine:
    """A shared engine for ``url`` (default :func:`control_db_url`)."""
    url = sqlalchemy_url(url or control_db_url())
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(url, pool_pre_ping=True)
