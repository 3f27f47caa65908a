"""The edge under hostile clients, over real sockets against real proxy processes.

Timeouts from accept, connection caps under a 1,024-descriptor limit, head and
request-target sizes refused as they arrive (the proxy's memory barely moves), HTTP
versions, trailers and chunk framing. Settings come from the environment
(``STRANGLER_<SETTING>``) or the command line, like an operator's.
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from migration_plans.control.processes import free_port

if TYPE_CHECKING:
    from tests.proxy.conftest import Servers

pytestmark = pytest.mark.e2e

ADMIN_TOKEN = "e2e-admin-token-0123456789"


def proxy_for(servers: Servers, tmp_path: Path, *, workers: int = 1, **env: str) -> tuple[int, str]:
    """An echo upstream and a proxy in front of it (``env``: STRANGLER_* settings)."""
    _, echo = servers.echo("monolith")
    routes = tmp_path / "routes.yaml"
    routes.write_text(f'upstreams:\n  monolith: {{url: "{echo}"}}\n')
    process, url = servers.proxy(
        routes, workers=workers, env={f"STRANGLER_{k.upper()}": v for k, v in env.items()}
    )
    return process.pid, url


def connect(url: str, source: str = "127.0.0.1", timeout: float = 5.0) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout, source_address=(source, 0))
    return sock


def read_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything until the server closes (b"" parts after a reset are dropped)."""
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return b"".join(chunks)


def closed(sock: socket.socket, received: dict[socket.socket, bytes]) -> bool:
    """True when the server closed ``sock``; what it sent is added to ``received``."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        sock.setblocking(False)
        while chunk := sock.recv(65536):
            received[sock] = received.get(sock, b"") + chunk
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    return True


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def seen(proxy_url: str) -> list[str]:
    """What the echo upstream received (through the proxy: it routes everything there)."""
    return list(httpx.get(f"{proxy_url}/_seen", timeout=5).json()["seen"])


@contextmanager
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


# -- 1. timeouts from accept ---------------------------------------------------------------


def test_slow_and_idle_connections_are_closed_while_a_client_is_served(
    servers: Servers, tmp_path: Path
) -> None:
    _, proxy = proxy_for(
        servers,
        tmp_path,
        client_header_timeout_seconds="1",
        client_body_idle_seconds="1",
        client_idle_seconds="1.5",
    )
    with sockets() as opened, httpx.Client(timeout=5) as client:
        idle = connect(proxy)  # never says a word
        trickle = connect(proxy)  # a slowloris: a header byte every 0.2 s
        trickle.sendall(b"GET /slow HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        upload = connect(proxy)  # a body that stops halfway
        upload.sendall(
            b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n" + b"x" * 50
        )
        kept = connect(proxy)  # served once, then silent on keep-alive
        kept.sendall(b"GET /once HTTP/1.1\r\nHost: a\r\n\r\n")
        blank = connect(proxy)  # empty lines, which begin no request, every 0.2 s
        opened += [idle, trickle, upload, kept, blank]
        served = 0
        received: dict[socket.socket, bytes] = {}
        done: set[socket.socket] = set()
        deadline = time.monotonic() + 15
        while True:
            done.update(sock for sock in opened if sock not in done and closed(sock, received))
            if len(done) == len(opened):
                break
            assert time.monotonic() < deadline, "slow or idle connections still open after 15 s"
            with suppress(OSError):
                trickle.send(b"x")
            with suppress(OSError):
                blank.send(b"\r\n")
            assert client.get(f"{proxy}/normal").status_code == 200  # others are served
            served += 1
            # The next byte in 0.2 s, or sooner when a connection is answered or closed.
            select.select([sock for sock in opened if sock not in done], [], [], 0.2)
        assert served >= 3
        # Each got the answer of its own limit before the close; the idle one, none.
        assert idle not in received and blank not in received
        assert received[trickle].startswith(b"HTTP/1.1 408 ")
        assert b"header_timeout" in received[trickle]
        assert b"connection: close" in received[trickle]
        assert received[upload].startswith(b"HTTP/1.1 408 ")
        assert b"body_idle_timeout" in received[upload]
        assert received[kept].startswith(b"HTTP/1.1 200 ") and b"408" not in received[kept]
    assert seen(proxy).count("GET /once") == 1
    assert "GET /slow" not in seen(proxy) and "POST /upload" not in seen(proxy)


# -- 2. connection caps under a 1,024-descriptor limit -------------------------------------


def test_idle_sockets_do_not_lock_out_a_new_client_under_a_1024_fd_limit(
    servers: Servers, tmp_path: Path
) -> None:
    _, echo = servers.echo("monolith")
    routes = tmp_path / "routes.yaml"
    routes.write_text(f'upstreams:\n  monolith: {{url: "{echo}"}}\n')
    port = free_port()
    proxy = f"http://127.0.0.1:{port}"
    argv = ["prlimit", "--nofile=1024:1024", "--", sys.executable, "-m", "strangler_proxy"]
    argv += ["serve", "--routes", str(routes), "--port", str(port), "--no-access-log"]
    servers.processes(
        argv,
        name="proxy-fd-limited",
        health_url=f"{proxy}/_strangler/health",
        env={"STRANGLER_ADMIN_TOKEN": ADMIN_TOKEN, "STRANGLER_CONTROL_DB_URL": servers.control_db},
    )
    with sockets() as opened:
        # 1,100 idle sockets from ten addresses (110 each: under the per-client cap of 256):
        # the global cap (1,024 less its reserve) closes the longest idle to make room.
        for n in range(1100):
            opened.append(connect(proxy, source=f"127.0.0.{2 + n % 10}"))
        response = httpx.get(f"{proxy}/fresh", timeout=10)
        assert response.status_code == 200
        # 300 more from one address: past 256 they are refused at once, clearly.
        crowd = [connect(proxy, source="127.0.0.20") for _ in range(300)]
        opened += crowd
        refused = read_all(crowd[-1])
        assert refused.startswith(b"HTTP/1.1 503 "), refused
        head = refused.lower()
        assert b"retry-after: 1" in head and b"connection: close" in head
        assert b"max_connections_per_client" in refused
        assert httpx.get(f"{proxy}/still-served", timeout=10).status_code == 200
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        metrics = httpx.get(f"{proxy}/_strangler/metrics", headers=auth, timeout=10).text
    counted = dict(
        line.rsplit(" ", 1)
        for line in metrics.splitlines()
        if line.startswith("strangler_proxy_edge_")
    )
    assert float(counted["strangler_proxy_edge_evictions_total"]) >= 1100 - 768
    refusals = 'strangler_proxy_edge_refusals_total{limit="max_connections_per_client"}'
    assert float(counted[refusals]) >= 300 - 256


# -- 3. sizes counted as they arrive -------------------------------------------------------


def flood(url: str, head: bytes, filler: bytes, total: int, pid: int) -> tuple[bytes, int]:
    """Send ``head`` then up to ``total`` bytes of ``filler`` as fast as the socket takes
    them, never finishing the head; the answer and the proxy's peak RSS growth (KiB)."""
    before = peak = rss_kib(pid)
    sock = connect(url)
    sock.setblocking(False)
    piece = filler * (65536 // len(filler))
    pending = memoryview(head)
    sent = 0
    answer = b""
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            wants_write = [sock] if sent < total else []
            readable, writable, _ = select.select([sock], wants_write, [], 0.5)
            peak = max(peak, rss_kib(pid))
            if readable:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                answer += chunk
                continue
            if writable:
                if not pending:
                    pending = memoryview(piece)
                try:
                    count = sock.send(pending)
                except OSError:
                    break
                pending = pending[count:]
                sent += count
            elif sent >= total and not answer:
                break  # all sent and nothing came back: the proxy is still buffering
    finally:
        sock.close()
    return answer, peak - before


def test_huge_header_and_url_refused_as_they_arrive(servers: Servers, tmp_path: Path) -> None:
    pid, proxy = proxy_for(servers, tmp_path)
    httpx.get(f"{proxy}/warm", timeout=5)
    answer, grown = flood(
        proxy, b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ", b"a", 200 * 1024 * 1024, pid
    )
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"max_header_bytes" in answer
    assert grown < 20 * 1024, f"proxy RSS grew {grown} KiB"
    answer, grown = flood(proxy, b"GET /", b"a", 200 * 1024 * 1024, pid)
    assert answer.startswith(b"HTTP/1.1 414 "), answer[:200]
    assert b"max_target_bytes" in answer
    assert grown < 20 * 1024, f"proxy RSS grew {grown} KiB"
    # A head over the limit that arrives in one piece is refused too.
    with sockets() as opened:
        sock = connect(proxy)
        opened.append(sock)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        assert read_all(sock).startswith(b"HTTP/1.1 431 ")
    assert httpx.get(f"{proxy}/after", timeout=5).status_code == 200


# -- 4-6. versions, trailers, chunk framing (under --workers 2: the forked path) ----------

REFUSED = [
    (b"GET /v09\r\n\r\n", b"505"),
    (b"GET /v20 HTTP/2.0\r\nHost: a\r\n\r\n", b"505"),
    (b"GET /v12 HTTP/1.2\r\nHost: a\r\n\r\n", b"400"),
    (
        b"POST /te10 HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"400",
    ),
    (
        b"POST /badchunk HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX\r\n0\r\n\r\n",
        b"400",
    ),
]


def test_versions_trailers_and_chunk_framing(servers: Servers, tmp_path: Path) -> None:
    _, proxy = proxy_for(servers, tmp_path, workers=2)
    for request, status in REFUSED:
        with sockets() as opened:
            sock = connect(proxy)
            opened.append(sock)
            sock.sendall(request)
            answer = read_all(sock)  # returns once the proxy closed the connection
        assert answer.startswith(b"HTTP/1.1 " + status), (request, answer[:200])
        assert answer.count(b"HTTP/1.1 ") == 1
    request = (
        b"POST /trailers HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n5\r\nhello\r\n0\r\nHost: evil.example\r\n"
        b"Authorization: Token stolen\r\nX-User-ID: 1\r\nX-Trailer: smuggled\r\n\r\n"
    )
    with sockets() as opened:
        sock = connect(proxy)
        opened.append(sock)
        sock.sendall(request)
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
    echoed = json.loads(answer.partition(b"\r\n\r\n")[2])
    names = [name for name, _ in echoed["headers"]]
    assert echoed["body_length"] == 5
    assert "authorization" not in names and "x-user-id" not in names
    assert "x-trailer" not in names
    assert dict(echoed["headers"])["host"] != "evil.example" and names.count("host") == 1
    # Nothing refused reached the upstream, not even a head.
    received = seen(proxy)
    for path in ("/v09", "/v20", "/v12", "/te10", "/badchunk"):
        assert not any(line.endswith(" " + path) for line in received), (path, received)
    # Bad framing after the head went upstream (a body over the buffer is streamed): the
    # client gets 400 and the half-sent upstream connection is not reused.
    big = b"%x\r\n%b\r\n" % (100_000, b"x" * 100_000)
    with sockets() as opened:
        sock = connect(proxy)
        opened.append(sock)
        sock.sendall(
            b"POST /streamed HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            + big
            + b"3\r\nabcXX\r\n0\r\n\r\n"
        )
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    for n in range(5):  # the pool is not poisoned by the half-sent request
        assert httpx.post(f"{proxy}/next/{n}", content=b"ok", timeout=5).status_code == 200
