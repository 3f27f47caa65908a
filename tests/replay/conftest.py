"""Phase replay tests: the plugin's databases come from the project's ``pg_database``;
the shop says how it is seeded, how a customer logs in and what traffic runs."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from migration_plans.testing import Login, Seed, Topology
from tests.replay.shop import SeedSize, ShopWorkload, log_customer_in


@pytest.fixture(scope="session")
def replay_database(pg_database: Callable[[str], str], redis_url: str) -> Callable[[str], str]:
    """Fresh PostgreSQL databases, dropped with the session (CI fails when servers are missing)."""
    return pg_database


@pytest.fixture(scope="session")
def replay_seed() -> Seed:
    return SeedSize()


@pytest.fixture(scope="session")
def replay_login() -> Login:
    return log_customer_in


@pytest.fixture(scope="session")
def replay_workload_factory() -> Callable[[Topology], ShopWorkload]:
    return ShopWorkload
