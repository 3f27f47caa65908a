"""Failed admin credentials throttled per client address: the buckets, and the admin API."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from strangler_proxy.app import StranglerProxy
from strangler_proxy.config import ProxyConfig
from strangler_proxy.edge.errors import TooManyAttempts
from strangler_proxy.throttling import AuthThrottle

TOKEN = "admin-token-0123456789"
TABLE = """\
version: v1
upstreams:
  monolith: {url: "http://127.0.0.1:9"}
contexts: {}
"""


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_failures_spend_the_bucket_and_come_back_with_time() -> None:
    clock = Clock()
    throttle = AuthThrottle(per_minute=6, burst=3, clock=clock)
    for _ in range(3):
        throttle.take("10.0.0.1")
    with pytest.raises(TooManyAttempts) as refused:
        throttle.take("10.0.0.1")
    assert refused.value.retry_after == 10 and refused.value.headers == ((b"retry-after", b"10"),)
    throttle.take("10.0.0.2")  # another address has its own bucket
    clock.now += 10
    throttle.take("10.0.0.1")  # one attempt back every 10 s
    with pytest.raises(TooManyAttempts):
        throttle.take("10.0.0.1")


def test_successes_do_not_count_and_memory_is_bounded() -> None:
    throttle = AuthThrottle(per_minute=5, burst=2, max_clients=100, clock=Clock())
    for _ in range(10):
        throttle.take("10.0.0.1")
        throttle.give_back("10.0.0.1")
    assert len(throttle) == 0  # a full bucket is forgotten
    for n in range(1000):
        throttle.take(f"10.0.{n // 256}.{n % 256}")
    assert len(throttle) == 100


@pytest.mark.anyio
async def test_admin_api_bearer_failures_are_throttled_per_address(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(TABLE)
    config = ProxyConfig(
        routes=routes,
        admin_token=SecretStr(TOKEN),
        access_log=False,
        live_phase=False,
        auth_failures_burst=3,
        auth_failures_per_minute=1,
    )
    proxy = StranglerProxy(config)

    def client(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=proxy, client=(address, 5000))
        return httpx.AsyncClient(transport=transport, base_url="http://proxy.test")

    wrong = {"Authorization": "Bearer wrong-token-0123456789"}
    right = {"Authorization": f"Bearer {TOKEN}"}
    async with client("203.0.113.9") as guesser, client("198.51.100.1") as admin:
        guesses = [(await guesser.get("/_strangler/table", headers=wrong)) for _ in range(5)]
        blocked_right = await guesser.get("/_strangler/table", headers=right)
        health = await guesser.get("/_strangler/health")
        no_header = [(await admin.get("/_strangler/table")) for _ in range(5)]
        served = await admin.get("/_strangler/table", headers=right)
    assert [guess.status_code for guess in guesses] == [401, 401, 401, 429, 429]
    assert guesses[3].json()["code"] == "too_many_attempts"
    assert int(guesses[3].headers["retry-after"]) == 60
    assert blocked_right.status_code == 429 and health.status_code == 200
    assert {answer.status_code for answer in no_header} == {401}  # no credential, no count
    assert served.status_code == 200
