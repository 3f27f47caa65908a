"""Adaptive shedding through the real proxy process: idle, every copy is compared; under
real load (a saturating client), copies are shed, counted in the metrics and the store,
and mirroring comes back when the load stops."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from pathlib import Path

import aiohttp
import httpx
import pytest

from migration_plans.control.processes import ManagedProcess, wait_until
from strangler_proxy.shadow.store import Counts, RedisShadowStore

from .conftest import Shops
from .test_proxy_shadow import ADMIN_TOKEN, mirror_counters, start_proxy

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

IDLE_REQUESTS = 30
DETAIL = "/api/v1/products/1/"


def shed_level(proxy: str) -> float:
    request = urllib.request.Request(
        proxy + "/_strangler/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    found = re.search(r"^strangler_shadow_shed_level (\S+)$", text, re.M)
    assert found, "strangler_shadow_shed_level missing from the proxy's metrics"
    return float(found[1])


async def saturate(url: str, connections: int, until: float, stop: asyncio.Event) -> int:
    """Closed-loop GETs on ``connections`` keep-alive connections until ``stop`` or ``until``."""
    done = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while not stop.is_set() and time.monotonic() < until:
            async with session.get(url) as response:
                await response.read()
                done += 1

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session) for _ in range(connections)))
    return done


async def load_until_shed(proxy: str, deadline: float) -> dict[str, float]:
    """Saturate the proxy until its metrics count shed copies (or the deadline)."""
    stop = asyncio.Event()
    load = asyncio.create_task(saturate(proxy + DETAIL, 32, deadline, stop))
    try:
        while time.monotonic() < deadline and not load.done():
            counters = await asyncio.to_thread(mirror_counters, proxy)
            if counters.get("shed", 0) > 0:
                return counters
            await asyncio.sleep(0.2)
        return await asyncio.to_thread(mirror_counters, proxy)
    finally:
        stop.set()
        await load


def compared_by(store: RedisShadowStore, count: int) -> None:
    """Wait until the route has ``count`` comparisons: the last copy was compared."""
    wait_until(
        lambda: store.counts(route="product-detail").compared >= count,
        timeout=30,
        interval=0.01,
        what=f"{count} comparisons",
    )


def settled(store: RedisShadowStore) -> Counts:
    """The route's counts once the mirror has worked off the copies queued under load."""
    seen: list[Counts] = []

    def still() -> bool:
        """The counts are what they were one poll (0.5 s) ago."""
        seen.append(store.counts(route="product-detail"))
        return len(seen) > 1 and seen[-1] == seen[-2]

    wait_until(still, timeout=30, interval=0.5, what="the mirror's backlog worked off")
    return seen[-1]


@pytest.fixture
def proxy(
    shops: Shops, store: RedisShadowStore, redis_url: str, tmp_path: Path
) -> tuple[ManagedProcess, str]:
    process, url = start_proxy(
        tmp_path,
        shops.primary,
        shops.candidate,
        {"STRANGLER_SHADOW_REDIS_URL": redis_url, "STRANGLER_SHADOW_PREFIX": store.prefix},
    )
    yield process, url  # type: ignore[misc]
    process.stop()


def test_idle_every_copy_is_compared_saturated_copies_are_shed_then_mirroring_returns(
    proxy: tuple[ManagedProcess, str], store: RedisShadowStore
) -> None:
    _, url = proxy
    with httpx.Client(base_url=url) as client:
        for done in range(1, IDLE_REQUESTS + 1):
            assert client.get(DETAIL).status_code == 200
            compared_by(store, done)  # an idle proxy: one request at a time
    wait_until(
        lambda: store.counts(route="product-detail").compared == IDLE_REQUESTS,
        timeout=30,
        what=f"{IDLE_REQUESTS} comparisons",
    )
    assert mirror_counters(url).get("shed", 0) == 0

    counters = asyncio.run(load_until_shed(url, time.monotonic() + 25))
    assert counters.get("shed", 0) > 0, f"nothing shed under saturating load: {counters}"
    wait_until(
        lambda: store.counts(route="product-detail").shed > 0,
        timeout=30,
        what="shed copies in the results store",
    )
    # the load is gone: the shedder lets every copy through again
    wait_until(lambda: shed_level(url) == 1.0, timeout=30, what="the shed level back at 1")
    before = settled(store)
    with httpx.Client(base_url=url) as client:
        for done in range(1, 11):
            assert client.get(DETAIL).status_code == 200
            compared_by(store, before.compared + done)
    wait_until(
        lambda: store.counts(route="product-detail").compared == before.compared + 10,
        timeout=30,
        what="the next 10 requests compared",
    )
    assert store.counts(route="product-detail").shed == before.shed
