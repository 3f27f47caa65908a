"""Phase replay tests: the plugin's databases come from the project's ``pg_database``."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture(scope="session")
def replay_database(pg_database: Callable[[str], str], redis_url: str) -> Callable[[str], str]:
    """Fresh PostgreSQL databases, dropped with the session (CI fails when servers are missing)."""
    return pg_database
