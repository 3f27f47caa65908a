"""Fixtures every test package shares: real PostgreSQL, real Redis, real server processes.

- ``pg_admin_url``: the server URL (``STRANGLER_PG_URL``); skips when unreachable,
  fails instead under ``CI=true``.
- ``pg_url``: a fresh database for the test session, dropped at the end.
- ``pg_database``: a factory for more fresh databases (monolith + service pairs).
- ``redis_url``: ``STRANGLER_REDIS_URL``, checked with PING.
- ``processes``: a factory that starts real processes and always stops them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import redis

from migration_plans.control.processes import ManagedProcess
from migration_plans.core.control_db import dispose_control_engines
from migration_plans.core.settings import PLANS_DIR_ENV, copy_templates
from migration_plans.testing.databases import (
    DatabaseUnavailable,
    check_server,
    create_database,
    drop_database,
    unique_name,
)
from migration_plans.testing.databases import (
    pg_admin_url as _pg_admin_url,
)
from migration_plans.testing.databases import (
    redis_url as _redis_url,
)
from reconciler.connections import dispose_engines

REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Give the run one plans folder made from the templates, as a deployment has, and
    its own control database.

    Subprocesses inherit ``STRANGLER_PLANS_DIR``; a test that moves phases copies its own.
    """
    if not os.environ.get("STRANGLER_CONTROL_DB_URL"):
        # The live phase and the replica registry live in the control database: never
        # let a test (or a process it starts) use the default ./var/control.sqlite3.
        control = Path(tempfile.mkdtemp(prefix="strangler-control-"))
        os.environ["STRANGLER_CONTROL_DB_URL"] = f"sqlite:///{control / 'control.sqlite3'}"
        config.add_cleanup(lambda: shutil.rmtree(control, ignore_errors=True))
    if os.environ.get(PLANS_DIR_ENV):
        return
    folder = Path(tempfile.mkdtemp(prefix="strangler-plans-"))
    copy_templates(folder)
    os.environ[PLANS_DIR_ENV] = str(folder)
    config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


def service_missing(reason: str) -> None:
    """Skip locally; under CI=true a missing service is a failure, never a skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: a missing service fails the run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    url = _pg_admin_url()
    try:
        check_server(url)
    except DatabaseUnavailable as exc:
        service_missing(str(exc))
    return url


@pytest.fixture(scope="session")
def pg_database(pg_admin_url: str) -> Iterator[Callable[[str], str]]:
    """Factory: ``pg_database("monolith")`` -> URL of a new, empty database."""
    created: list[str] = []

    def make(label: str = "db") -> str:
        name = unique_name(f"strangler_{label}")
        created.append(name)
        return create_database(pg_admin_url, name)

    yield make
    for name in created:
        drop_database(pg_admin_url, name)


@pytest.fixture(scope="session")
def pg_url(pg_database: Callable[[str], str]) -> str:
    """One fresh PostgreSQL database for the whole test session."""
    return pg_database("session")


@pytest.fixture(scope="module", autouse=True)
def _cached_engines_disposed() -> Iterator[None]:
    """After each test module, the reconciler's and the control plane's cached engines give
    their pooled connections back: PostgreSQL's max_connections (100 here) is shared by
    the whole suite and the processes its end-to-end tests start."""
    yield
    dispose_engines()
    dispose_control_engines()


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = _redis_url()
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        service_missing(f"Redis at {url} is not reachable: {exc}")
    return url


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[..., ManagedProcess]]:
    """Factory that starts real processes (logs under tmp_path) and stops them all after."""
    started: list[ManagedProcess] = []

    def start(
        argv: Sequence[str],
        *,
        name: str,
        health_url: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> ManagedProcess:
        process = ManagedProcess.start(
            argv,
            name=name,
            health_url=health_url,
            env=env,
            cwd=REPO_ROOT,
            log_dir=tmp_path / "logs",
            timeout=timeout,
        )
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        process.stop()
