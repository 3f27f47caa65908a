"""Fixtures for the dashboard tests: a proxy in process with its stores in a temp folder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from migration_plans.control.dashboard import MOUNT, Dashboard, mount
from migration_plans.control.routing import render_routes
from migration_plans.core.plan import load_plans
from strangler_proxy.app import StranglerProxy
from strangler_proxy.config import ProxyConfig
from tests.dashboard.seed import Databases, copy_plans, make_databases

TOKEN = "dashboard-test-token-0123456789"
IDENTITY_KEY = "dashboard-identity-key-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def routes_text(plans_dir: Path, url: str = "http://127.0.0.1:9") -> str:
    upstreams = {"monolith": url, "catalog": url, "inventory": url}
    return render_routes(upstreams, load_plans(plans_dir))


@dataclass
class Place:
    """Where one test's plans, route table and databases are."""

    folder: Path
    plans_dir: Path
    routes: Path
    databases: Databases

    def environment(self) -> dict[str, str]:
        return {
            **self.databases.environment(),
            "STRANGLER_PLANS_DIR": str(self.plans_dir),
            "STRANGLER_ROUTES": str(self.routes),
            "STRANGLER_IDENTITY_KEY": IDENTITY_KEY,
        }


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Place:
    """Plans (catalog in dual_write), a route table and SQLite stores; env points at them."""
    plans_dir = copy_plans(tmp_path / "plans", phases={"catalog": "dual_write"})
    routes = tmp_path / "routes.yaml"
    routes.write_text(routes_text(plans_dir))
    found = Place(tmp_path, plans_dir, routes, make_databases(tmp_path / "db"))
    for name, value in found.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("STRANGLER_REDIS_URL", raising=False)
    monkeypatch.delenv("STRANGLER_SHADOW_REDIS_URL", raising=False)
    return found


class FixedSources:
    """Stands in for :class:`migration_plans.control.dashboard.data.Sources`: counts collections."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.calls = 0
        self.data = data or {
            "generated_at": 1764201600.0,
            "contexts": [],
            "contexts_error": None,
            "routes": {"error": "not read in this test"},
            "shadow": {"configured": False, "routes": []},
            "reconciler": {"tables": [], "last_runs": []},
            "dualwrite": [],
            "took_ms": 0.0,
        }

    def collect(self) -> dict[str, Any]:
        self.calls += 1
        return self.data


def make_proxy(routes: Path, *, token: str | None = TOKEN, **settings: Any) -> StranglerProxy:
    config = ProxyConfig(
        routes=routes,
        admin_token=SecretStr(token) if token else None,
        access_log=False,
        **settings,
    )
    return StranglerProxy(config, admin_mounts={MOUNT: mount})


def dashboard_of(proxy: StranglerProxy) -> Dashboard:
    """The dashboard mounted in ``proxy``."""
    found = proxy.admin.mounts[MOUNT]
    assert isinstance(found, Dashboard)
    return found


@asynccontextmanager
async def client(
    proxy: StranglerProxy, *, address: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of ``proxy``, seen as coming from ``address``."""
    transport = httpx.ASGITransport(app=proxy, client=(address, 123))
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy.test") as http:
        yield http


ProxyFactory = Callable[..., StranglerProxy]


@pytest.fixture
def fixed_proxy(place: Place) -> tuple[StranglerProxy, FixedSources]:
    """A proxy whose dashboard reads fixed data (auth and caching tests)."""
    proxy = make_proxy(place.routes)
    sources = FixedSources()
    dashboard_of(proxy).sources = sources  # type: ignore[assignment]
    return proxy, sources


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
