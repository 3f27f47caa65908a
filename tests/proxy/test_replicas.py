"""An upstream with several endpoints (``urls:``): the rotation, then the proxy in-process
in front of real in-process aiohttp replicas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from migration_plans.control.processes import free_port
from migration_plans.core.identity import IDENTITY_HEADER, verify_identity
from strangler_proxy.upstream.forwarder import CONNECT_COOLDOWN, Rotation
from tests.proxy.conftest import EchoUpstream
from tests.proxy.test_app import AUTH, KEY, TOKEN, client, make_proxy


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def picks(rotation: Rotation, count: int) -> list[int]:
    return [rotation.pick() for _ in range(count)]


def test_rotation_takes_endpoints_in_turn() -> None:
    assert picks(Rotation(3, clock=Clock()), 7) == [0, 1, 2, 0, 1, 2, 0]
    assert picks(Rotation(1, clock=Clock()), 3) == [0, 0, 0]


def test_an_endpoint_that_failed_to_connect_is_skipped_for_the_cooldown() -> None:
    clock = Clock()
    rotation = Rotation(3, clock=clock)
    rotation.failed(1)
    assert rotation.cooling() == [1]
    assert picks(rotation, 6) == [0, 2, 0, 2, 0, 2]  # the others share its turns evenly
    clock.now += CONNECT_COOLDOWN - 0.01
    assert 1 not in picks(rotation, 4)
    clock.now += 0.01
    assert rotation.cooling() == []
    assert sorted(picks(rotation, 3)) == [0, 1, 2]


def test_when_every_endpoint_is_cooling_down_the_turns_go_on() -> None:
    clock = Clock()
    rotation = Rotation(2, clock=clock)
    rotation.failed(0)
    rotation.failed(1)
    assert picks(rotation, 4) == [0, 1, 0, 1]


def test_an_answer_ends_the_cooldown() -> None:
    rotation = Rotation(2, clock=Clock())
    rotation.failed(0)
    rotation.answered(0)
    assert rotation.cooling() == []
    assert picks(rotation, 2) == [0, 1]


def test_after_a_connect_failure_the_others_are_tried_once_warm_ones_first() -> None:
    rotation = Rotation(4, clock=Clock())
    assert rotation.after(1) == [2, 3, 0]
    rotation.failed(2)
    assert rotation.after(1) == [3, 0, 2]
    assert Rotation(1, clock=Clock()).after(0) == []


def quoted(urls: list[str]) -> str:
    return ", ".join(f'"{url}"' for url in urls)


def table(monolith: str | list[str], replicas: list[str], extra: str = "") -> str:
    where = f'url: "{monolith}"' if isinstance(monolith, str) else f"urls: [{quoted(monolith)}]"
    return f"""\
version: v1
upstreams:
  monolith: {{{where}}}
  catalog:
    urls: [{quoted(replicas)}]
    breaker: {{window: 4, min_calls: 2, failure_rate: 0.5, cooldown: 60}}
{extra}contexts:
  catalog:
    routes:
      - name: product-reads
        prefix: /api/v1/products/
        methods: [GET]
        upstream: catalog
        fallback: true
      - name: categories
        prefix: /api/v1/categories/
        upstream: catalog
"""


@pytest.fixture
async def replicas() -> AsyncIterator[list[EchoUpstream]]:
    started = [await EchoUpstream(name).start() for name in ("catalog-a", "catalog-b")]
    yield started
    for upstream in started:
        await upstream.stop()


def dead() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.mark.anyio
async def test_requests_take_the_replicas_in_turn(
    tmp_path: Path, monolith: EchoUpstream, replicas: list[EchoUpstream]
) -> None:
    proxy = make_proxy(tmp_path, table(monolith.url, [r.url for r in replicas]))
    async with client(proxy) as http:
        answers = [(await http.get(f"/api/v1/products/{n}/")).json()["upstream"] for n in range(6)]
        admin = await http.get("/_strangler/table", headers={"Authorization": f"Bearer {TOKEN}"})
    await proxy.stop()
    assert answers == ["catalog-a", "catalog-b"] * 3
    assert admin.json()["upstreams"] == {
        "monolith": [monolith.url],
        "catalog": [r.url for r in replicas],
    }


@pytest.mark.anyio
async def test_a_replica_that_refuses_is_skipped_and_no_request_fails(
    tmp_path: Path, monolith: EchoUpstream, replicas: list[EchoUpstream]
) -> None:
    live = replicas[0]
    proxy = make_proxy(tmp_path, table(monolith.url, [dead(), live.url]))
    async with client(proxy) as http:
        write = await http.post("/api/v1/categories/", content=b"{}")  # tries the dead one
        reads = [await http.get(f"/api/v1/products/{n}/") for n in range(6)]
    breaker = proxy.forwarder.breakers["catalog"]
    await proxy.stop()
    assert write.status_code == 200 and write.json()["upstream"] == "catalog-a"  # nothing sent
    assert [r.json()["upstream"] for r in reads] == ["catalog-a"] * 6
    assert breaker.snapshot()["window_failures"] == 0


@pytest.mark.anyio
async def test_when_no_replica_answers_reads_fall_back_and_the_breaker_counts_once(
    tmp_path: Path, monolith: EchoUpstream
) -> None:
    proxy = make_proxy(tmp_path, table(monolith.url, [dead(), dead()]))
    async with client(proxy) as http:
        read = await http.get("/api/v1/products/1/")
        write = await http.post("/api/v1/categories/", content=b"{}")
    breaker = proxy.forwarder.breakers["catalog"]
    await proxy.stop()
    assert read.status_code == 200 and read.json()["upstream"] == "monolith"
    assert write.status_code == 502 and write.json()["code"] == "upstream_failed"
    assert breaker.snapshot()["window_failures"] == 2  # one per request, not per replica


@pytest.mark.anyio
async def test_whoami_goes_to_a_replica_of_the_auth_upstream_that_answers(
    tmp_path: Path, replicas: list[EchoUpstream]
) -> None:
    live = replicas[0]
    text = table([dead(), live.url], [live.url], AUTH)
    proxy = make_proxy(tmp_path, text)
    async with client(proxy) as http:
        first = await http.get("/api/v1/products/1/", headers={"Authorization": "Token good-token"})
        second = await http.get("/api/v1/products/1/", headers={"Authorization": "Token other"})
    await proxy.stop()
    identity = dict(first.json()["headers"])[IDENTITY_HEADER.lower()]
    assert verify_identity(identity, key=KEY.encode(), audience="catalog").sub == "7"
    assert second.status_code == 401 and second.json()["code"] == "invalid_token"
    assert live.whoami_calls == 2
