"""How requests share an upstream's pool (in process, real aiohttp upstreams): a route's
share, the pool-wait deadline (counted by the breaker), a stalled upload cut (not counted)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from strangler_proxy import server
from strangler_proxy.app import StranglerProxy
from strangler_proxy.cli import app as bare_proxy_app
from strangler_proxy.config import ProxyConfig

if TYPE_CHECKING:
    from tests.proxy.conftest import EchoUpstream


def table_text(url: str, pool_size: int) -> str:
    return f"""\
version: v1
upstreams:
  monolith:
    url: "{url}"
    pool_size: {pool_size}
    breaker: {{window: 10, min_calls: 10, failure_rate: 0.5, cooldown: 60}}
contexts:
  orders:
    routes:
      - name: orders
        prefix: /api/v1/orders/
        methods: [GET, POST]
        upstream: monolith
  catalog:
    routes:
      - name: products
        prefix: /api/v1/products/
        methods: [GET]
        upstream: monolith
"""


def make_proxy(tmp_path: Path, url: str, *, pool_size: int, **settings: Any) -> StranglerProxy:
    path = tmp_path / "routes.yaml"
    path.write_text(table_text(url, pool_size))
    config = ProxyConfig(
        routes=path,
        admin_token=SecretStr("admin-token-0123456789"),
        access_log=False,
        live_phase=False,
        **settings,
    )
    return StranglerProxy(config)


def client(proxy: StranglerProxy) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=proxy, client=("10.1.2.3", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://shop.test", timeout=10)


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@pytest.mark.anyio
async def test_one_route_holds_at_most_its_share_of_the_pool(
    tmp_path: Path, monolith: EchoUpstream
) -> None:
    proxy = make_proxy(tmp_path, monolith.url, pool_size=4, upstream_route_share=0.5)
    async with client(proxy) as http:
        held = [
            asyncio.ensure_future(http.post(f"/api/v1/orders/slow/{n}/", content=b"{}"))
            for n in range(2)
        ]
        await eventually(lambda: len(monolith.seen) == 2)
        beyond = await http.post("/api/v1/orders/slow/3/", content=b"{}")
        other_route = await http.get("/api/v1/products/1/")
        monolith.unblock.set()
        answers = await asyncio.gather(*held)
        after = await http.post("/api/v1/orders/4/", content=b"{}")
    assert beyond.status_code == 503 and beyond.json()["code"] == "upstream_busy"
    assert beyond.headers["retry-after"] == "1" and "share" in beyond.json()["detail"]
    assert other_route.status_code == 200
    assert [answer.status_code for answer in answers] == [200, 200] and after.status_code == 200
    assert proxy.forwarder.breakers["monolith"].snapshot()["window_failures"] == 0
    assert proxy.forwarder.pools["monolith"].in_flight == {}


@pytest.mark.anyio
async def test_waiting_for_a_pooled_connection_ends_at_the_deadline_and_counts_as_failure(
    tmp_path: Path, monolith: EchoUpstream
) -> None:
    proxy = make_proxy(
        tmp_path,
        monolith.url,
        pool_size=1,
        upstream_route_share=1.0,
        upstream_pool_wait_seconds=0.3,
    )
    async with client(proxy) as http:
        held = asyncio.ensure_future(http.get("/api/v1/orders/slow/1/"))
        await eventually(lambda: len(monolith.seen) == 1)
        waited = await http.get("/api/v1/products/1/")
        monolith.unblock.set()
        first = await held
        served = await http.get("/api/v1/products/1/")
    assert waited.status_code == 503 and waited.json()["code"] == "upstream_busy"
    assert "stayed busy for 0.3 s" in waited.json()["detail"]
    assert first.status_code == 200 and served.status_code == 200
    assert proxy.forwarder.breakers["monolith"].snapshot()["window_failures"] == 1


@pytest.mark.anyio
async def test_a_stalled_upload_is_cut_with_408_and_not_blamed_on_the_upstream(
    tmp_path: Path, monolith: EchoUpstream
) -> None:
    proxy = make_proxy(tmp_path, monolith.url, pool_size=2, upstream_body_idle_seconds=0.3)
    stall = asyncio.Event()

    async def stalling_body() -> AsyncIterator[bytes]:
        yield b"x" * 100_000  # more than the proxy buffers: the body is streamed upstream
        await stall.wait()
        yield b"never sent"

    async with client(proxy) as http:
        cut = await http.post("/api/v1/orders/", content=stalling_body())
        stall.set()
        pool = proxy.forwarder.pools["monolith"].clients[0]
        left_open = pool.open_connections
        after = await http.get("/api/v1/orders/1/")
    assert cut.status_code == 408 and cut.json()["code"] == "upload_stalled"
    assert cut.headers["connection"] == "close"
    assert left_open == 0  # the cut connection was discarded, not pooled
    assert after.status_code == 200
    assert proxy.forwarder.breakers["monolith"].snapshot()["window_failures"] == 0


def test_settings_come_from_flags_then_the_environment_and_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[ProxyConfig] = []
    monkeypatch.setattr(server, "run", lambda config, **_: seen.append(config))
    monkeypatch.setenv("STRANGLER_UPSTREAM_POOL_WAIT_SECONDS", "2.5")
    monkeypatch.setenv("STRANGLER_DASHBOARD_SECURE_COOKIE", "true")
    path = tmp_path / "routes.yaml"
    path.write_text(table_text("http://127.0.0.1:9", 10))
    argv = ["serve", "--routes", str(path), "--upstream-route-share", "0.25"]
    runner = CliRunner()
    assert runner.invoke(bare_proxy_app, argv).exit_code == 0
    config = seen[0]
    assert config.upstream_route_share == 0.25 and config.upstream_pool_wait_seconds == 2.5
    assert config.upstream_body_idle_seconds == 30.0 and config.dashboard_secure_cookie
    refused = runner.invoke(bare_proxy_app, [*argv[:3], "--upstream-route-share", "1.5"])
    assert refused.exit_code == 2 and "upstream_route_share" in refused.output
    monkeypatch.setenv("STRANGLER_UPSTREAM_BODY_IDLE_SECONDS", "0")
    refused = runner.invoke(bare_proxy_app, argv)
    assert refused.exit_code == 2 and "upstream_body_idle_seconds" in refused.output
