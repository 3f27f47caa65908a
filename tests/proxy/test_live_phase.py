"""The proxy follows the live phase in-process: write fence, release, overflow, ACK and NACK.

A real proxy (httpx ASGITransport) with its follower and reporter on a temporary SQLite
control database, in front of in-process aiohttp upstreams; the control plane's part is
played by ``publish()`` and by rewriting the route file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from migration_plans.core.database import engine as make_engine
from migration_plans.core.live_phase import PhaseState, publish
from migration_plans.core.phase import Phase
from migration_plans.core.replicas import Replica, list_replicas
from strangler_proxy.app import StranglerProxy
from strangler_proxy.config import ProxyConfig

if TYPE_CHECKING:
    from tests.proxy.conftest import EchoUpstream

pytestmark = pytest.mark.anyio

TOKEN = "admin-token-0123456789"


def routes(monolith: str, catalog: str, writes_to: str = "monolith", version: int = 1) -> str:
    return f"""\
version: {version}
upstreams:
  monolith: {{url: "{monolith}"}}
  catalog: {{url: "{catalog}"}}
contexts:
  catalog:
    routes:
      - name: product-reads
        prefix: /api/v1/products/
        methods: [GET]
        upstream: monolith
      - name: product-writes
        prefix: /api/v1/products/
        methods: [POST, PUT, PATCH, DELETE]
        upstream: {writes_to}
"""


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` as the control plane does: a sibling file renamed over it."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait (without blocking the proxy's loop) until ``condition`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class Stage:
    """A following proxy, its route file, the control database and the two upstreams."""

    proxy: StranglerProxy
    path: Path
    engine: Engine
    monolith: EchoUpstream
    catalog: EchoUpstream
    http: httpx.AsyncClient

    def publish(self, phase: Phase, fence_seconds: float | None = None) -> PhaseState:
        return publish(self.engine, "catalog", phase, fence_seconds=fence_seconds)

    async def served(self, state: PhaseState) -> None:
        """Wait until the proxy has applied ``state`` (not necessarily acknowledged it)."""
        live = self.proxy.live
        await until(
            lambda: (seen := live.states.get("catalog")) is not None and seen.epoch >= state.epoch,
            f"epoch {state.epoch} applied",
        )

    async def acknowledged(self, state: PhaseState) -> None:
        """Wait until the proxy serves ``state``'s epoch (its registry row follows at once)."""
        await until(
            lambda: self.proxy.live.served.get("catalog") == state.epoch,
            f"epoch {state.epoch} acknowledged",
        )

    async def reported(self, state: PhaseState) -> Replica:
        """Wait until the registry row acknowledges ``state``'s epoch; the row."""
        await until(lambda: self.row().epoch("catalog") == state.epoch, f"epoch {state.epoch} row")
        return self.row()

    def row(self) -> Replica:
        (replica,) = list_replicas(self.engine)
        return replica

    def start_write(self, path: str = "/api/v1/products/") -> asyncio.Task[httpx.Response]:
        return asyncio.ensure_future(self.http.post(path, json={"name": "lamp"}))


StageFactory = Callable[..., Awaitable[Stage]]


@pytest.fixture
async def stage(
    tmp_path: Path, monolith: EchoUpstream, catalog: EchoUpstream
) -> AsyncIterator[StageFactory]:
    """Factory: ``await stage(**config)`` -> a started proxy following a fresh control DB."""
    started: list[Stage] = []
    url = f"sqlite:///{tmp_path / 'control.sqlite3'}"
    engine = make_engine(url)

    async def make(**config: Any) -> Stage:
        path = tmp_path / "routes.yaml"
        path.write_text(routes(monolith.url, catalog.url))
        settings = ProxyConfig(
            routes=path,
            admin_token=SecretStr(TOKEN),
            access_log=False,
            live_phase=True,
            control_db_url=url,
            advertise_url="http://proxy.test:8000",
            **config,
        )
        proxy = StranglerProxy(settings, environ={})
        proxy.start()
        transport = httpx.ASGITransport(app=proxy, client=("10.1.2.3", 40000))
        http = httpx.AsyncClient(transport=transport, base_url="http://shop.test", timeout=30)
        made = Stage(proxy, path, engine, monolith, catalog, http)
        started.append(made)
        return made

    yield make
    for made in started:
        await made.http.aclose()
        await made.proxy.stop()
    engine.dispose()


async def test_the_fence_holds_a_write_while_reads_pass(stage: StageFactory) -> None:
    s = await stage(reload_interval=3600)
    fence = s.publish(Phase.SHARED, fence_seconds=30)
    await s.acknowledged(fence)
    write = s.start_write()
    await until(lambda: s.proxy.fence.held == 1, "the write held")
    read = await s.http.get("/api/v1/products/1/")
    assert read.status_code == 200 and read.json()["upstream"] == "monolith"
    assert not write.done() and "POST /api/v1/products/" not in s.monolith.seen
    await s.reported(fence)  # acknowledged while holding the write
    assert not write.done()
    lifted = s.publish(Phase.SHARED)
    response = await write
    assert response.status_code == 200 and response.json()["upstream"] == "monolith"
    await s.acknowledged(lifted)
    metrics = s.proxy.metrics.render().decode()
    assert 'strangler_proxy_fence_released_total{context="catalog",outcome="lifted"} 1.0' in metrics
    assert 'strangler_proxy_fence_held{context="catalog"} 0.0' in metrics
    assert f'strangler_proxy_phase_epoch{{context="catalog"}} {float(lifted.epoch)}' in metrics


async def test_released_writes_go_where_the_new_table_sends_them(stage: StageFactory) -> None:
    s = await stage(reload_interval=3600)
    await s.acknowledged(s.publish(Phase.SHARED, fence_seconds=30))
    write = s.start_write()
    await until(lambda: s.proxy.fence.held == 1, "the write held")
    moved = routes(s.monolith.url, s.catalog.url, "catalog", version=2)
    write_atomically(s.path, moved)
    flipped = s.publish(Phase.DUAL_WRITE, fence_seconds=30)
    row = await s.reported(flipped)
    new_hash = hashlib.sha256(moved.encode()).hexdigest()
    assert row.ack.route_hash == new_hash and row.ack.route_generation == 2
    assert not write.done()
    s.publish(Phase.DUAL_WRITE)
    response = await write
    assert response.status_code == 200 and response.json()["upstream"] == "catalog"
    assert s.monolith.seen == [] and s.catalog.seen == ["POST /api/v1/products/"]


async def test_the_lifted_fence_closes_the_breaker_of_the_new_owner(stage: StageFactory) -> None:
    """A breaker opened while the service was down does not refuse the writes the fence held."""
    s = await stage(reload_interval=3600)
    moved = routes(s.monolith.url, s.catalog.url, "catalog", version=2)
    write_atomically(s.path, moved)
    s.proxy.holder.reload()
    breaker = s.proxy.forwarder.breakers["catalog"]
    for _ in range(breaker.settings.window):
        breaker.record(False)
    assert breaker.state.value == "open" and not breaker.allow()
    await s.acknowledged(s.publish(Phase.DUAL_WRITE, fence_seconds=30))
    write = s.start_write()
    await until(lambda: s.proxy.fence.held == 1, "the write held")
    assert breaker.state.value == "open"  # a fence going up does not touch it
    s.publish(Phase.DUAL_WRITE)
    response = await write
    assert response.status_code == 200 and response.json()["upstream"] == "catalog"
    assert breaker.state.value == "closed"


async def test_more_writes_than_the_queue_get_503_retry_after(stage: StageFactory) -> None:
    s = await stage(fence_queue=1)
    await s.acknowledged(s.publish(Phase.SHARED, fence_seconds=30))
    first = s.start_write()
    await until(lambda: s.proxy.fence.held == 1, "the first write held")
    refused = await s.http.put("/api/v1/products/1/", json={})
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["code"] == "fence_overflow"
    s.publish(Phase.SHARED)
    assert (await first).status_code == 200
    metrics = s.proxy.metrics.render().decode()
    assert (
        'strangler_proxy_fence_released_total{context="catalog",outcome="overflow"} 1.0' in metrics
    )


async def test_an_expired_fence_releases_its_writes(stage: StageFactory) -> None:
    s = await stage()
    fence = s.publish(Phase.SHARED, fence_seconds=0.5)
    await s.acknowledged(fence)
    started = time.time()
    response = await s.http.delete("/api/v1/products/1/")
    assert fence.fence_until is not None and time.time() >= fence.fence_until - 0.01
    assert response.status_code == 200 and response.json()["upstream"] == "monolith"
    assert time.time() - started > 0.2
    assert s.proxy.fence.gates == {}
    metrics = s.proxy.metrics.render().decode()
    assert (
        'strangler_proxy_fence_released_total{context="catalog",outcome="expired"} 1.0' in metrics
    )


async def test_a_fenced_epoch_is_acknowledged_once_writes_in_flight_finish(
    stage: StageFactory,
) -> None:
    s = await stage()
    before = s.publish(Phase.SHARED)
    await s.reported(before)
    in_flight = s.start_write("/api/v1/products/slow/")
    await until(lambda: s.monolith.seen == ["POST /api/v1/products/slow/"], "the write upstream")
    fence = s.publish(Phase.SHARED, fence_seconds=30)
    await s.served(fence)
    await asyncio.sleep(0.2)  # several follower polls and heartbeats: still not acknowledged
    assert s.proxy.live.served["catalog"] == before.epoch
    assert s.row().epoch("catalog") == before.epoch and s.proxy.fence.in_flight["catalog"] == 1
    s.monolith.unblock.set()
    assert (await in_flight).status_code == 200
    await s.reported(fence)


async def test_a_fence_that_cannot_drain_in_time_is_never_acknowledged(
    stage: StageFactory,
) -> None:
    s = await stage()
    before = s.publish(Phase.SHARED)
    await s.acknowledged(before)
    in_flight = s.start_write("/api/v1/products/slow/")
    await until(lambda: len(s.monolith.seen) == 1, "the write upstream")
    fence = s.publish(Phase.SHARED, fence_seconds=0.3)
    await s.served(fence)
    await until(lambda: "catalog" not in s.proxy.fence.gates, "the fence expired")
    s.monolith.unblock.set()
    assert (await in_flight).status_code == 200
    await asyncio.sleep(0.1)
    assert s.proxy.live.served["catalog"] == before.epoch


async def test_a_refused_table_is_nacked_with_its_hash_and_a_good_one_clears_it(
    stage: StageFactory,
) -> None:
    s = await stage(reload_interval=3600)  # only the published epochs reload the file
    good_hash = hashlib.sha256(s.path.read_bytes()).hexdigest()
    await until(lambda: s.row().ack.route_hash == good_hash, "registered")
    bad = routes(s.monolith.url, s.catalog.url, "nowhere")
    write_atomically(s.path, bad)
    first = s.publish(Phase.SHARED)
    await s.acknowledged(first)
    await until(lambda: s.row().ack.nack is not None, "the NACK")
    nack = s.row().ack.nack
    assert nack is not None and nack.route_hash == hashlib.sha256(bad.encode()).hexdigest()
    assert "unknown upstream 'nowhere'" in nack.reason
    assert s.row().ack.route_hash == good_hash  # the last good table keeps serving
    moved = routes(s.monolith.url, s.catalog.url, "catalog", version=2)
    write_atomically(s.path, moved)
    second = s.publish(Phase.SHARED)
    await s.acknowledged(second)
    moved_hash = hashlib.sha256(moved.encode()).hexdigest()
    await until(lambda: s.row().ack.route_hash == moved_hash, "the new table acknowledged")
    assert s.row().ack.nack is None and s.row().ack.route_generation == 2


async def test_putting_the_serving_table_back_clears_the_nack(stage: StageFactory) -> None:
    s = await stage(reload_interval=3600)
    good = s.path.read_text()
    write_atomically(s.path, "upstreams: [broken\n")
    assert not s.proxy.holder.reload()
    await until(lambda: s.row().ack.nack is not None, "the NACK")
    write_atomically(s.path, good)
    assert not s.proxy.holder.reload()  # the same table: nothing swaps
    await until(lambda: s.row().ack.nack is None, "the NACK cleared")


async def test_the_registry_row_names_the_proxy(stage: StageFactory) -> None:
    s = await stage()
    row = await s.reported(s.publish(Phase.SHARED))
    assert row.role.value == "proxy" and row.address == "http://proxy.test:8000"
    assert row.instance == s.proxy.live.instance and row.pid == os.getpid()
    await s.proxy.stop()
    assert list_replicas(s.engine) == []  # a clean stop deregisters


def test_following_is_on_unless_the_environment_turns_it_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "routes.yaml"
    monkeypatch.setenv("STRANGLER_CONTROL_DB_URL", "postgresql://db.example/control")
    config = ProxyConfig(routes=path, host="0.0.0.0", port=8123)
    assert config.live_phase and config.fence_queue == 1000
    assert config.advertise_url == "http://0.0.0.0:8123"
    assert config.control_db_url == "postgresql+psycopg://db.example/control"
    monkeypatch.setenv("STRANGLER_LIVE_PHASE", "off")
    assert not ProxyConfig(routes=path).live_phase
    with pytest.raises(ValueError, match="fence_queue"):
        ProxyConfig(routes=path, fence_queue=-1)


async def test_the_admin_api_shows_the_replica_and_its_fences(stage: StageFactory) -> None:
    s = await stage()
    fence = s.publish(Phase.SHARED, fence_seconds=30)
    await s.acknowledged(fence)
    write = s.start_write()
    await until(lambda: s.proxy.fence.held == 1, "the write held")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    answer = (await s.http.get("/_strangler/live", headers=auth)).json()
    assert answer["following"] and answer["instance"] == (await s.reported(fence)).instance
    assert answer["held"] == 1 and answer["fence_queue"] == 1000 and answer["nack"] is None
    assert answer["route_hash"] == s.proxy.holder.current.sha256
    assert answer["contexts"]["catalog"] == {
        "phase": "shared",
        "epoch": fence.epoch,
        "served_epoch": fence.epoch,
        "fenced": True,
        "holding": True,
        "fence_epoch": fence.epoch,
        "fence_until": fence.fence_until,
        "held": 1,
        "writes_in_flight": 0,
    }
    assert (await s.http.get("/_strangler/live")).status_code == 401
    s.publish(Phase.SHARED)
    assert (await write).status_code == 200
