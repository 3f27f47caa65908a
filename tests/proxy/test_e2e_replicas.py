"""End to end over real sockets: a proxy process in front of two uvicorn replicas of one
upstream (``urls:``).

A replica killed with SIGKILL between requests (its pooled connections dead, its port
refusing) and one stopped under load (SIGTERM: uvicorn finishes what it started) must
fail no request. A replica killed in the middle of writing a response still fails
that one request: nothing in this test kills that way under load.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from migration_plans.control.processes import wait_until
from tests.proxy.test_e2e import admin, client_loop

if TYPE_CHECKING:
    from tests.proxy.conftest import Servers

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

READ = "/api/v1/products/1/"


def routes(monolith: str, replicas: list[str]) -> str:
    urls = ", ".join(f'"{url}"' for url in replicas)
    return f"""\
version: 1
upstreams:
  monolith: {{url: "{monolith}"}}
  catalog:
    urls: [{urls}]
    timeouts: {{connect: 0.5, read: 5}}
contexts:
  catalog:
    routes:
      - name: product-reads
        prefix: /api/v1/products/
        methods: [GET, HEAD]
        upstream: catalog
        fallback: true
      - name: product-writes
        prefix: /api/v1/products/
        methods: [POST]
        upstream: catalog
"""


def answers(proxy: str, count: int) -> list[str]:
    """Which upstream answered each of ``count`` reads, one after the other."""
    with httpx.Client(base_url=proxy, timeout=10) as client:
        responses = [client.get(READ) for _ in range(count)]
    assert [r.status_code for r in responses] == [200] * count, [r.text for r in responses]
    return [r.json()["upstream"] for r in responses]


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_reads_take_turns_and_a_killed_replica_fails_no_request(
    servers: Servers, tmp_path: Path
) -> None:
    _, monolith = servers.echo("monolith")
    replica_a, url_a = servers.echo("catalog-a")
    _, url_b = servers.echo("catalog-b")
    path = tmp_path / "routes.yaml"
    path.write_text(routes(monolith, [url_a, url_b]))
    _, proxy = servers.proxy(path)
    assert admin(proxy, "table")["upstreams"]["catalog"] == [url_a, url_b]

    spread = Counter(answers(proxy, 40))  # the pools now hold connections to both
    replica_a.kill()
    survivor = answers(proxy, 40)
    write = httpx.post(f"{proxy}/api/v1/products/", json={"name": "x"}, timeout=10)
    breaker = admin(proxy, "breakers")["catalog"]
    servers.echo("catalog-a", port=port_of(url_a))
    wait_until(lambda: "catalog-a" in answers(proxy, 4), timeout=15, what="a takes turns again")

    assert spread == {"catalog-a": 20, "catalog-b": 20}  # one proxy worker: strict turns
    assert set(survivor) == {"catalog-b"}
    assert write.status_code == 200 and write.json()["upstream"] == "catalog-b"
    assert (breaker["state"], breaker["window_failures"]) == ("closed", 0)


def test_replicas_stopped_under_load_fail_no_read_and_reads_fall_back_when_all_are_down(
    servers: Servers, tmp_path: Path
) -> None:
    _, monolith = servers.echo("monolith")
    replica_a, url_a = servers.echo("catalog-a")
    replica_b, url_b = servers.echo("catalog-b")
    path = tmp_path / "routes.yaml"
    path.write_text(routes(monolith, [url_a, url_b]))
    _, proxy = servers.proxy(path)
    with client_loop(f"{proxy}{READ}") as loop:
        wait_until(lambda: {"catalog-a", "catalog-b"} <= set(loop.answers), timeout=15)
        replica_a.stop()
        stopped_at = len(loop.answers)
        wait_until(lambda: len(loop.answers) >= stopped_at + 40, timeout=15, what="survivor")
        survived = loop.answers[stopped_at + 1 :]  # one may have been in flight
        replica_b.stop()
        down_at = len(loop.answers)
        wait_until(lambda: len(loop.answers) >= down_at + 40, timeout=15, what="fallback")
    write = httpx.post(f"{proxy}/api/v1/products/", json={"name": "x"}, timeout=10)
    assert loop.failures == []
    assert set(survived) == {"catalog-b"}
    assert set(loop.answers[down_at + 1 :]) == {"monolith"}
    assert write.status_code in (502, 503)  # writes never fall back
