"""Fixtures of the reconciler tests: fresh monolith + service database pairs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from migration_plans.core.settings import mapping_for, plan_path
from reconciler.runner import ReconcileOptions
from tests.reconciler.reconcile_tables import (
    ENGINES,
    Pair,
    engine,
    monolith_metadata,
    service_metadata,
)

FAST = ReconcileOptions(grace_seconds=0.05, max_rechecks=2, levels=(64, 8), segment_size=1024)


@pytest.fixture
def fast_options() -> ReconcileOptions:
    return FAST


@pytest.fixture(scope="session")
def pg_session_urls(pg_database: Callable[[str], str]) -> tuple[str, str]:
    """One monolith and one service database for the whole session (emptied per test)."""
    return pg_database("rec_monolith"), pg_database("rec_service")


@pytest.fixture
def pg_urls(pg_session_urls: tuple[str, str]) -> tuple[str, str]:
    """The session's PostgreSQL pair, emptied: creating databases per test is slow."""
    for url in pg_session_urls:
        with engine(url).begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
    return pg_session_urls


@pytest.fixture
def make_pair(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str], Pair]]:
    """Factory: ``make_pair("sqlite" | "pg")`` -> two fresh databases with the tables."""
    counter = iter(range(1000))

    def make(backend: str) -> Pair:
        n = next(counter)
        if backend == "sqlite":
            urls = (f"sqlite:///{tmp_path}/monolith{n}.db", f"sqlite:///{tmp_path}/service{n}.db")
        else:
            urls = request.getfixturevalue("pg_urls")
        monolith_metadata.create_all(engine(urls[0]))
        service_metadata.create_all(engine(urls[1]))
        return Pair(backend, urls[0], urls[1], mapping_for("catalog"))

    yield make
    for url in list(ENGINES):
        ENGINES.pop(url).dispose()


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A plan directory with catalog in dual_write (the repair direction), and a control
    database of its own; returns the control database's URL."""
    plans = tmp_path / "plans"
    plans.mkdir()
    text = plan_path("catalog").read_text().replace("phase: shared", "phase: dual_write")
    (plans / "catalog.yaml").write_text(text)
    control = f"sqlite:///{tmp_path}/control.db"
    monkeypatch.setenv("STRANGLER_PLANS_DIR", str(plans))
    monkeypatch.setenv("STRANGLER_CONTROL_DB_URL", control)
    return control
