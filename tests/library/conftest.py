"""Fixtures of the library tests: the second monolith (tests/library/monolith) migrated by
Django and seeded, the lending service's database migrated by Alembic, on PostgreSQL.

- ``library_plans``: a plans folder holding ``lending.yaml`` only, as ``STRANGLER_PLANS_DIR``
  while one test module runs (the session's folder comes back after it: the rest of the
  suite reads the shop's plans).
- ``library_monolith``: a migrated, seeded monolith database (one per module and backend,
  read-only for the tests that share it).
- ``lending_app``: factory ``lending_app(phase)`` -> TestClient over that monolith and a
  fresh, migrated service database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from extracted_services.common.migrations import upgrade
from migration_plans.core.identity import IDENTITY_HEADER, Identity, sign_identity
from migration_plans.core.settings import PLANS_DIR_ENV
from migration_plans.testing import Login, ReplayProject, Seed, Topology
from migration_plans.testing.plugin import started_topology
from tests.library.workload import LibraryWorkload, log_librarian_in, seed_library

REPO_ROOT = Path(__file__).resolve().parents[2]
PLANS = Path(__file__).resolve().parent / "plans"
MONOLITH_SETTINGS = "tests.library.monolith.settings"
SERVICE_MODULE = "tests.library.services.lending"
IDENTITY_KEY = "library-tests-identity-key"


def identity_headers(sub: str = "1") -> dict[str, str]:
    """Headers of a request the proxy authenticated for the lending service."""
    identity = Identity(sub=sub, name="librarian")
    header = sign_identity(identity, key=IDENTITY_KEY.encode(), audience="lending", ttl=60)
    return {IDENTITY_HEADER: header}


def manage(database_url: str, *argv: str, plans: Path = PLANS) -> str:
    """Run a management command of the library monolith; its output, or a failure naming it."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "true",
        "DJANGO_SETTINGS_MODULE": MONOLITH_SETTINGS,
        PLANS_DIR_ENV: str(plans),
        "PASSWORD_HASHERS": "django.contrib.auth.hashers.MD5PasswordHasher",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.library.monolith.manage", *argv],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"manage {' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def library_plans(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("library-plans")
    shutil.copy(PLANS / "lending.yaml", folder / "lending.yaml")
    saved = os.environ.get(PLANS_DIR_ENV)
    os.environ[PLANS_DIR_ENV] = str(folder)
    from tests.library.services.lending import crud

    crud.lending_mapping.cache_clear()
    yield folder
    crud.lending_mapping.cache_clear()
    if saved is None:
        os.environ.pop(PLANS_DIR_ENV, None)
    else:
        os.environ[PLANS_DIR_ENV] = saved


def _database(request: pytest.FixtureRequest, backend: str, label: str, folder: Path) -> str:
    """A new database on ``backend``: a SQLite file in ``folder``, or PostgreSQL's."""
    if backend == "sqlite":
        return f"sqlite:///{folder / f'{label}.sqlite3'}"
    make: Callable[[str], str] = request.getfixturevalue("pg_database")
    return make(label)


@pytest.fixture(scope="module", params=["sqlite", "pg"])
def library_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def library_monolith(
    request: pytest.FixtureRequest,
    library_backend: str,
    library_plans: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """The library monolith's database on the backend, migrated by Django and seeded."""
    folder = tmp_path_factory.mktemp("library-monolith")
    url = _database(request, library_backend, "library_monolith", folder)
    manage(url, "migrate", "--no-input", plans=library_plans)
    manage(url, "seed_library", "--seed", "7", plans=library_plans)
    return url


@pytest.fixture
def lending_app(
    request: pytest.FixtureRequest, library_backend: str, library_monolith: str, tmp_path: Path
) -> Iterator[Callable[[str], TestClient]]:
    """Factory: an in-process client of the lending service in ``phase`` (same backend as
    the monolith, a new service database each)."""
    from tests.library.services.lending.config import Settings
    from tests.library.services.lending.main import create_app

    clients: list[TestClient] = []

    def make(phase: str) -> TestClient:
        service_url = _database(request, library_backend, f"lending_{len(clients)}", tmp_path)
        upgrade("lending", service_url, module=SERVICE_MODULE)
        settings = Settings(
            database_url=service_url,
            monolith_database_url=library_monolith,
            phase=phase,
            identity_key=IDENTITY_KEY,
            live_phase=False,
            inline_relay=False,
        )
        client = TestClient(create_app(settings), base_url="http://testserver")
        client.__enter__()
        client.app.state.test_service_url = service_url  # type: ignore[attr-defined]
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


# The phase replay (migration_plans.testing's plugin): the library's project, seed, login,
# workload; its databases from the root conftest's pg_database.


@pytest.fixture(scope="session")
def replay_project() -> ReplayProject:
    return ReplayProject(
        plans=PLANS,
        monolith_settings=MONOLITH_SETTINGS,
        monolith_celery_app="",
        project_path=(REPO_ROOT,),
    )


@pytest.fixture(scope="session")
def replay_database(pg_database: Callable[[str], str], redis_url: str) -> Callable[[str], str]:
    """Fresh PostgreSQL databases, dropped with the session (CI fails when servers are missing)."""
    return pg_database


@pytest.fixture(scope="session")
def replay_replicas() -> int:
    return 1


@pytest.fixture(scope="session")
def replay_seed() -> Seed:
    return seed_library


@pytest.fixture(scope="session")
def replay_login() -> Login:
    return log_librarian_in


@pytest.fixture(scope="session")
def replay_workload_factory() -> Callable[[Topology], LibraryWorkload]:
    return LibraryWorkload


@pytest.fixture(scope="package")
def replay_topology(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    replay_project: ReplayProject,
    replay_seed: Seed,
    replay_login: Login,
    replay_replicas: int,
) -> Iterator[Topology]:
    """The library's own started topology, for this package only.

    The plugin's ``replay_topology`` is one per session, built with the overrides of the
    first test that asks for it: in a whole-suite run the shop's (``tests/replay``) and
    this package would share it. PostgreSQL and a private ``redis-server``.
    """
    yield from started_topology(
        request,
        tmp_path_factory.mktemp("library-replay"),
        replay_project,
        seed=replay_seed,
        login=replay_login,
        replicas=replay_replicas,
    )
