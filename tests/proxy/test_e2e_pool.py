"""Stalled uploads do not take an upstream's pool (issue #18), over real sockets: an echo
upstream and proxies as real processes, 100 chunked POSTs that stop mid-body."""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from migration_plans.control.processes import wait_until

if TYPE_CHECKING:
    from tests.proxy.conftest import Servers

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": "Bearer e2e-admin-token-0123456789"}
STALLED = 100
POOL_WAIT = 1.0
BODY_IDLE = 3.0
HELD = 80  # upstream_route_share's default, 0.8, of the pool: the rest stays for other routes


def routes(upstream: str) -> str:
    return f"""\
version: 1
upstreams:
  monolith:
    url: "{upstream}"
    pool_size: {STALLED}
    breaker: {{window: 50, min_calls: 50, failure_rate: 0.5, cooldown: 30}}
contexts:
  orders:
    routes:
      - name: orders
        prefix: /api/v1/orders/
        methods: [POST]
        upstream: monolith
  catalog:
    routes:
      - name: products
        prefix: /api/v1/products/
        methods: [GET]
        upstream: monolith
"""


@contextmanager
def stalled_uploads(proxy: str, count: int) -> Iterator[list[socket.socket]]:
    """``count`` chunked POSTs that send their head and a first chunk of 70 kB (more than the
    proxy buffers, so the body streams upstream), then go quiet."""
    host, port = proxy.removeprefix("http://").split(":")
    chunk = b'{"a": "' + b"x" * 70_000
    head = (
        b"POST /api/v1/orders/ HTTP/1.1\r\nHost: shop.test\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%b\r\n"
        % (len(chunk), chunk)
    )
    sockets = []
    try:
        for _ in range(count):
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.sendall(head)
            sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def answers(sockets: list[socket.socket], expected: int, timeout: float) -> dict[int, bytes]:
    """What came back on the sockets (by index) once ``expected`` answered, or at ``timeout``."""
    received = {index: b"" for index in range(len(sockets))}
    with selectors.DefaultSelector() as selector:
        for index, sock in enumerate(sockets):
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, index)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.1):
                chunk = key.fileobj.recv(65536)  # type: ignore[union-attr]
                received[key.data] += chunk
                if not chunk:
                    selector.unregister(key.fileobj)
            if sum(1 for data in received.values() if _complete(data)) >= expected:
                break
    return {index: data for index, data in received.items() if data}


def _complete(data: bytes) -> bool:
    """A whole response (head and a body of its Content-Length) is in ``data``."""
    head, found, body = data.partition(b"\r\n\r\n")
    if not found:
        return False
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return True


def test_stalled_uploads_take_only_their_share_and_are_cut(
    servers: Servers, tmp_path: Path
) -> None:
    _, upstream = servers.echo("monolith")
    path = tmp_path / "routes.yaml"
    path.write_text(routes(upstream))
    env = {
        "STRANGLER_UPSTREAM_POOL_WAIT_SECONDS": str(POOL_WAIT),
        "STRANGLER_UPSTREAM_BODY_IDLE_SECONDS": str(BODY_IDLE),
        "STRANGLER_LIVE_PHASE": "off",
    }
    _, proxy = servers.proxy(path, env=env)
    with stalled_uploads(proxy, STALLED) as sockets:
        # The route holds its share of the pool; the uploads beyond it are refused at once.
        refused = answers(sockets, STALLED - HELD, timeout=10)
        assert len(refused) == STALLED - HELD
        assert all(data.startswith(b"HTTP/1.1 503 ") for data in refused.values())
        assert all(
            b"upstream_busy" in data and b"retry-after: 1" in data.lower()
            for data in refused.values()
        )
        started = time.monotonic()
        read = httpx.get(f"{proxy}/api/v1/products/1/", timeout=POOL_WAIT + 5)
        assert read.status_code == 200, read.text  # served although 80 uploads hang
        assert time.monotonic() - started < POOL_WAIT + 5
        # The 80 held uploads are cut once they have been silent for BODY_IDLE seconds.
        held = [sock for index, sock in enumerate(sockets) if index not in refused]
        cut = answers(held, len(held), timeout=BODY_IDLE + 10)
        assert len(cut) == len(held)
        assert all(
            data.startswith(b"HTTP/1.1 408 ") and b"upload_stalled" in data for data in cut.values()
        )
    breakers = httpx.get(f"{proxy}/_strangler/breakers", headers=ADMIN, timeout=5).json()
    assert breakers["monolith"]["window_failures"] == 0  # the clients stalled, not the upstream
    write = httpx.post(f"{proxy}/api/v1/orders/", json={"a": 1}, timeout=5)
    assert write.status_code == 200


def test_without_a_share_the_pool_wait_deadline_answers_503_and_counts(
    servers: Servers, tmp_path: Path
) -> None:
    _, upstream = servers.echo("monolith")
    path = tmp_path / "routes.yaml"
    path.write_text(routes(upstream))
    env = {
        "STRANGLER_UPSTREAM_POOL_WAIT_SECONDS": str(POOL_WAIT),
        "STRANGLER_UPSTREAM_ROUTE_SHARE": "1",
        "STRANGLER_LIVE_PHASE": "off",
    }
    _, proxy = servers.proxy(path, env=env)
    with stalled_uploads(proxy, STALLED):
        wait_until(lambda: _busy(proxy) == STALLED, timeout=10, what="every connection busy")
        started = time.monotonic()
        read = httpx.get(f"{proxy}/api/v1/products/1/", timeout=POOL_WAIT + 5)
        waited = time.monotonic() - started
    assert read.status_code == 503 and read.json()["code"] == "upstream_busy"
    assert read.headers["retry-after"] == "1" and waited < POOL_WAIT + 5
    breakers = httpx.get(f"{proxy}/_strangler/breakers", headers=ADMIN, timeout=5).json()
    assert breakers["monolith"]["window_failures"] == 1


def _busy(proxy: str) -> int:
    pools = httpx.get(f"{proxy}/_strangler/pools", headers=ADMIN, timeout=5).json()
    busy: int = pools["monolith"]["busy"]
    return busy
