"""Fixtures for the proxy tests: route tables, and upstream/proxy processes."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web

from migration_plans.control.processes import ManagedProcess, free_port, uvicorn_argv
from strangler_proxy.routetable.loader import LoadedTable, parse_table

BASE = """\
version: 7
upstreams:
  monolith: {url: "http://127.0.0.1:1"}
  catalog: {url: "http://127.0.0.1:2"}
  inventory: {url: "http://127.0.0.1:3"}
contexts:
  catalog:
    routes:
      - name: product-detail
        path: /api/v1/products/{id:int}/
        methods: [GET, HEAD]
        upstream: catalog
        fallback: true
      - name: products
        prefix: /api/v1/products/
        methods: [GET, POST]
        upstream: monolith
      - name: categories
        prefix: /api/v1/categories/
        methods: [GET]
        canary:
          split: {monolith: 90, catalog: 10}
          sticky: {header: X-User-ID}
  inventory:
    routes:
      - name: stock
        path: /api/v1/stock/{sku}/
        upstream: inventory
"""

TableFactory = Callable[..., LoadedTable]


@pytest.fixture(scope="session")
def base_text() -> str:
    """A valid table: catalog routes (detail with fallback, prefix, canary) and inventory."""
    return BASE


@pytest.fixture(scope="session")
def make_table() -> TableFactory:
    """Factory: ``make_table(text=BASE, name="routes.yaml")`` -> a validated table."""

    @functools.lru_cache(maxsize=32)
    def make(text: str = BASE, name: str = "routes.yaml") -> LoadedTable:
        return parse_table(text, Path(name))

    return make


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class EchoUpstream:
    """An in-process aiohttp upstream that answers with what it received.

    ``seen`` lists every echoed request as ``"METHOD /path"``; a path containing
    ``/slow/`` is answered only once the test sets ``unblock``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.whoami_calls = 0
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.seen: list[str] = []
        self.unblock = asyncio.Event()

    async def start(self) -> EchoUpstream:
        app = web.Application()
        app.router.add_get("/api/v1/auth/whoami/", self.whoami)
        app.router.add_route("*", "/{tail:.*}", self.echo)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append(f"{request.method} {request.path}")
        if "/slow/" in request.path:
            await self.unblock.wait()
        if request.path.startswith("/status/"):
            return web.json_response({"upstream": self.name}, status=int(request.path[8:]))
        return web.json_response(
            {
                "upstream": self.name,
                "method": request.method,
                "raw_path": request.raw_path,
                "headers": [[k.lower(), v] for k, v in request.headers.items()],
                "body_length": len(body),
            },
            headers={"Set-Cookie": "session=upstream", "X-Upstream": self.name},
        )

    async def whoami(self, request: web.Request) -> web.Response:
        self.whoami_calls += 1
        if request.headers.get("Authorization") == "Token good-token":
            return web.json_response({"id": 7, "username": "alice"})
        return web.json_response({"detail": "Invalid token."}, status=401)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def monolith() -> AsyncIterator[EchoUpstream]:
    upstream = await EchoUpstream("monolith").start()
    yield upstream
    await upstream.stop()


@pytest.fixture
async def catalog() -> AsyncIterator[EchoUpstream]:
    upstream = await EchoUpstream("catalog").start()
    yield upstream
    await upstream.stop()


ADMIN_TOKEN = "e2e-admin-token-0123456789"
REPO_ROOT = Path(__file__).resolve().parents[2]


class Servers:
    """Starts echo upstreams and proxies as real uvicorn processes on free ports.

    Proxies follow the live phase in ``control_db`` (a SQLite file of the test's own).
    """

    def __init__(self, processes: Callable[..., ManagedProcess], control_db: str) -> None:
        self.processes = processes
        self.control_db = control_db

    def echo(self, name: str, port: int | None = None) -> tuple[ManagedProcess, str]:
        port = port or free_port()
        process = self.processes(
            uvicorn_argv("tests.proxy.echo_app:app", port),
            name=f"echo-{name}",
            health_url=f"http://127.0.0.1:{port}/healthz",
            env={"ECHO_NAME": name},
        )
        return process, f"http://127.0.0.1:{port}"

    def proxy(
        self,
        routes: Path,
        *,
        reload_interval: float = 0.1,
        env: dict[str, str] | None = None,
        workers: int = 1,
    ) -> tuple[ManagedProcess, str]:
        port = free_port()
        argv = [sys.executable, "-m", "strangler_proxy", "serve", "--routes", str(routes)]
        argv += ["--port", str(port), "--reload-interval", str(reload_interval), "--no-access-log"]
        argv += ["--workers", str(workers)]
        process = self.processes(
            argv,
            name="proxy",
            health_url=f"http://127.0.0.1:{port}/_strangler/health",
            env={
                "STRANGLER_ADMIN_TOKEN": ADMIN_TOKEN,
                "STRANGLER_CONTROL_DB_URL": self.control_db,
                **(env or {}),
            },
        )
        return process, f"http://127.0.0.1:{port}"


@pytest.fixture
def servers(processes: Callable[..., ManagedProcess], tmp_path: Path) -> Servers:
    return Servers(processes, f"sqlite:///{tmp_path / 'control.sqlite3'}")
