"""Real monolith servers for the API tests: one per backend (SQLite, PostgreSQL), per session.

Django settings are process-global, so the tests never configure Django in the
pytest process: each backend gets a migrated database and a real uvicorn process
(``python -m legacy_monolith.cli serve``), and the tests drive it over HTTP.
Every test creates its own rows (unique names), so tests share the servers safely.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from migration_plans.control.processes import ManagedProcess, free_port
from migration_plans.testing.databases import drop_database, libpq_url, unique_name, with_database

REPO_ROOT = Path(__file__).resolve().parents[2]
STAFF_USERNAME = "staff"
STAFF_PASSWORD = "staff-password-123"
SECRET_KEY = "tests-only-secret-key-" + uuid.uuid4().hex


def monolith_env(database_url: str, **extra: str) -> dict[str, str]:
    """Environment for a monolith process on ``database_url``."""
    return {
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET_KEY,
        "DEBUG": "false",
        "DJANGO_SETTINGS_MODULE": "legacy_monolith.settings",
        "PASSWORD_HASHERS": "django.contrib.auth.hashers.MD5PasswordHasher",
        **extra,
    }


def manage(database_url: str, *argv: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m legacy_monolith.manage <argv>`` against ``database_url``; raise on failure."""
    result = subprocess.run(
        [sys.executable, "-m", "legacy_monolith.manage", *argv],
        env={**os.environ, **monolith_env(database_url, **extra_env)},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if result.returncode != 0:
        raise AssertionError(f"manage {' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def start_monolith(
    database_url: str, log_dir: Path, *, workers: int = 1, name: str = "monolith"
) -> ManagedProcess:
    """Start ``strangler monolith serve`` on a free port and wait for /healthz."""
    port = free_port()
    argv = [sys.executable, "-m", "legacy_monolith.cli", "serve", "--port", str(port)]
    argv += ["--workers", str(workers)]
    return ManagedProcess.start(
        argv,
        name=name,
        health_url=f"http://127.0.0.1:{port}/healthz",
        env=monolith_env(database_url),
        cwd=REPO_ROOT,
        log_dir=log_dir,
        timeout=60,
    )


def base_url(process: ManagedProcess) -> str:
    assert process.health_url is not None
    return process.health_url.removesuffix("/healthz")


@dataclass
class Monolith:
    """A running monolith: its URL, database, and clients for anonymous, customer and staff."""

    backend: str
    url: str
    database_url: str
    process: ManagedProcess
    staff_token: str = ""
    customer_token: str = ""
    _clients: list[httpx.Client] = field(default_factory=list)

    def client(self, token: str | None = None) -> httpx.Client:
        """An HTTP client for the API, authenticated with ``token`` when given."""
        headers = {"Authorization": f"Token {token}"} if token else {}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=30)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()


def unique(prefix: str = "t") -> str:
    """A short unique string for names, slugs and SKUs."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def sign_up(client: httpx.Client, username: str | None = None) -> str:
    """Create a customer account through the API; return its token."""
    username = username or unique("user")
    response = client.post(
        "/api/v1/customers/",
        json={"username": username, "password": "correct-horse-1", "email": f"{username}@x.io"},
    )
    assert response.status_code == 201, response.text
    token = client.post(
        "/api/v1/auth/token/", json={"username": username, "password": "correct-horse-1"}
    )
    assert token.status_code == 200, token.text
    return str(token.json()["token"])


class MonolithDatabases:
    """Fresh monolith databases, cloned from one migrated template per backend.

    The template is migrated and given the staff user once; clones are a file copy
    (SQLite) or ``CREATE DATABASE ... TEMPLATE`` (PostgreSQL), so each test that
    needs a database of its own does not pay for Django's migrations again.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.templates: dict[str, str] = {}
        self.clones: list[tuple[str, str]] = []  # (admin url, database name)

    def fresh(self, request: pytest.FixtureRequest, backend: str) -> str:
        """A new migrated database on ``backend`` (``sqlite`` or ``postgresql``)."""
        if backend == "sqlite":
            template = self._template(
                backend, lambda: f"sqlite:///{self.root / 'template.sqlite3'}"
            )
            path = self.root / f"{unique('monolith')}.sqlite3"
            shutil.copyfile(template.removeprefix("sqlite:///"), path)
            return f"sqlite:///{path}"
        admin: str = request.getfixturevalue("pg_admin_url")
        make_database: Callable[[str], str] = request.getfixturevalue("pg_database")
        template = self._template(backend, lambda: make_database("monolith_template"))
        name = unique_name("strangler_monolith")
        with psycopg.connect(libpq_url(admin), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template.rsplit("/", 1)[1])
                )
            )
        self.clones.append((admin, name))
        return with_database(libpq_url(admin), name)

    def _template(self, backend: str, create: Callable[[], str]) -> str:
        if backend not in self.templates:
            url = create()
            manage(url, "migrate", "--no-input")
            manage(
                url,
                *("createsuperuser", "--no-input", "--username", STAFF_USERNAME),
                *("--email", "staff@example.com"),
                DJANGO_SUPERUSER_PASSWORD=STAFF_PASSWORD,
            )
            self.templates[backend] = url
        return self.templates[backend]

    def drop_clones(self) -> None:
        for admin, name in self.clones:
            drop_database(admin, name)


@pytest.fixture(scope="session")
def monolith_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonolithDatabases]:
    """Factory of fresh, migrated monolith databases (see :class:`MonolithDatabases`)."""
    databases = MonolithDatabases(tmp_path_factory.mktemp("monolith-databases"))
    yield databases
    databases.drop_clones()


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)]
)
def monolith(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    monolith_databases: MonolithDatabases,
) -> Iterator[Monolith]:
    """A migrated, running monolith with a staff user and a customer (per backend)."""
    backend = str(request.param)
    tmp = tmp_path_factory.mktemp(f"monolith-{backend}")
    database_url = monolith_databases.fresh(request, backend)
    process = start_monolith(database_url, tmp / "logs", name=f"monolith-{backend}")
    server = Monolith(backend, base_url(process), database_url, process)
    try:
        anonymous = server.client()
        staff = anonymous.post(
            "/api/v1/auth/token/", json={"username": STAFF_USERNAME, "password": STAFF_PASSWORD}
        )
        server.staff_token = str(staff.json()["token"])
        server.customer_token = sign_up(anonymous)
        yield server
    finally:
        server.close()
        process.stop()


@pytest.fixture
def anon(monolith: Monolith) -> httpx.Client:
    """Anonymous API client."""
    return monolith.client()


@pytest.fixture
def customer(monolith: Monolith) -> httpx.Client:
    """API client of a (non-staff) customer."""
    return monolith.client(monolith.customer_token)


@pytest.fixture
def staff(monolith: Monolith) -> httpx.Client:
    """API client of the staff superuser."""
    return monolith.client(monolith.staff_token)


@pytest.fixture
def make_product(staff: httpx.Client) -> Callable[..., dict[str, Any]]:
    """Factory: a new category + product (+ stock in a new warehouse when ``stock`` is given)."""

    def make(price: str = "10.00", stock: int | None = None, **fields: object) -> dict[str, Any]:
        category = staff.post(
            "/api/v1/categories/", json={"name": unique("cat"), "slug": unique("cat")}
        ).json()
        body = {"sku": unique("SKU"), "name": "Thing", "price": price, "category": category["id"]}
        product = staff.post("/api/v1/products/", json={**body, **fields})
        assert product.status_code == 201, product.text
        result: dict[str, Any] = product.json()
        if stock is not None:
            warehouse = staff.post(
                "/api/v1/warehouses/", json={"code": unique("W")[:16], "name": "Depot"}
            ).json()
            item = staff.post(
                "/api/v1/stock/",
                json={"product": result["id"], "warehouse": warehouse["id"], "quantity": stock},
            )
            assert item.status_code == 201, item.text
            result["stock_item"] = item.json()
        return result

    return make
