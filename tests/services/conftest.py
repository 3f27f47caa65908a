"""Fixtures of the service tests: real monolith databases (migrated by Django), real service
databases (migrated by Alembic), on SQLite and PostgreSQL, and apps in every phase.

- ``backend``: ``"sqlite"`` or ``"pg"`` (parametrised; pg skips/fails as the root conftest says).
- ``databases``: factory of fresh ``monolith()`` and ``service(context)`` URLs on that backend.
- ``service_app``: factory ``service_app("catalog", "dual_write")`` -> (TestClient, Stack).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from extracted_services.common.migrations import upgrade
from migration_plans.core.database import libpq_url
from migration_plans.core.identity import IDENTITY_HEADER, Identity, sign_identity
from migration_plans.core.settings import DEFAULT_SERVICE_PORTS

REPO_ROOT = Path(__file__).resolve().parents[2]
IDENTITY_KEY = "service-tests-identity-key"


def identity_headers(
    sub: str = "7",
    *,
    key: str = IDENTITY_KEY,
    ttl: float = 60,
    audience: str | tuple[str, ...] = tuple(DEFAULT_SERVICE_PORTS),
) -> dict[str, str]:
    """Headers of a request the proxy authenticated (for every service unless told)."""
    identity = Identity(sub=sub, name="tester")
    return {IDENTITY_HEADER: sign_identity(identity, key=key.encode(), audience=audience, ttl=ttl)}


def django_migrate(database_url: str) -> None:
    """Create the monolith's tables the way production does: Django's migrations."""
    env = {**os.environ, "DATABASE_URL": database_url, "DEBUG": "true"}
    result = subprocess.run(
        [sys.executable, "-m", "legacy_monolith.manage", "migrate", "--no-input"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, f"Django migrate failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="session")
def monolith_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("monolith-template") / "monolith.sqlite3"
    django_migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def monolith_pg(pg_database: Callable[[str], str]) -> str:
    url = pg_database("svc_monolith")
    django_migrate(url)
    return url


@pytest.fixture(scope="session")
def pg_service_databases(pg_database: Callable[[str], str]) -> dict[str, str]:
    """One Alembic-migrated PostgreSQL database per context, emptied before each use."""
    made = {}
    for context in ("catalog", "inventory", "payments"):
        made[context] = pg_database(f"svc_{context}")
        upgrade(context, made[context])
    return made


def empty_tables(
    url: str, *, keep: tuple[str, ...] = ("alembic_version", "django_migrations")
) -> None:
    """TRUNCATE every table of the public schema (ids restart), except ``keep``.

    PostgreSQL databases are reused between tests: creating and dropping one per test
    costs checkpoints that other suites on this machine pay for too.
    """
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
            if row[0] not in keep
        ]
        if names:
            conn.execute(
                sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                    sql.SQL(", ").join(sql.Identifier(name) for name in names)
                )
            )


@pytest.fixture(params=["sqlite", "pg"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class Databases:
    """Fresh databases of one backend for one test."""

    backend: str
    tmp_path: Path
    request: pytest.FixtureRequest
    made: dict[str, str] = field(default_factory=dict)

    def monolith(self) -> str:
        """A monolith database with Django's tables and no rows."""
        if "monolith" in self.made:
            return self.made["monolith"]
        if self.backend == "sqlite":
            template: Path = self.request.getfixturevalue("monolith_sqlite_template")
            path = self.tmp_path / "monolith.sqlite3"
            shutil.copyfile(template, path)
            url = f"sqlite:///{path}"
        else:
            url = self.request.getfixturevalue("monolith_pg")
            keep = ("django_migrations", "django_content_type", "auth_permission")
            empty_tables(url, keep=keep)
        self.made["monolith"] = url
        return url

    def service(self, context: str, *, migrate: bool = True) -> str:
        """An empty database for ``context``'s own tables, migrated to head."""
        if context in self.made:
            return self.made[context]
        if self.backend == "pg":
            url = self.request.getfixturevalue("pg_service_databases")[context]
            empty_tables(url)
        else:
            url = f"sqlite:///{self.tmp_path / f'{context}.sqlite3'}"
            if migrate:
                upgrade(context, url)
        self.made[context] = url
        return url


@pytest.fixture
def databases(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Databases:
    if backend == "pg":
        request.getfixturevalue("pg_admin_url")
    return Databases(backend, tmp_path, request)


@dataclass
class Stack:
    """A service app and the databases behind it."""

    context: str
    phase: str
    monolith_url: str
    service_url: str
    app: Any


@pytest.fixture
def service_app(databases: Databases) -> Iterator[Callable[..., tuple[TestClient, Stack]]]:
    """Factory: an in-process client of ``context`` in ``phase`` over fresh databases."""
    clients: list[TestClient] = []

    def make(context: str, phase: str, **overrides: Any) -> tuple[TestClient, Stack]:
        import importlib

        package = f"extracted_services.{context}"
        settings_cls = importlib.import_module(f"{package}.config").Settings
        main = importlib.import_module(f"{package}.main")
        monolith_url = databases.monolith()
        service_url = databases.service(context)
        settings = settings_cls(
            database_url=service_url,
            monolith_database_url=monolith_url,
            phase=phase,
            identity_key=IDENTITY_KEY,
            **overrides,
        )
        app = main.create_app(settings)
        client = TestClient(app, base_url="http://testserver")
        client.__enter__()
        clients.append(client)
        return client, Stack(context, phase, monolith_url, service_url, app)

    yield make
    for client in clients:
        client.__exit__(None, None, None)
