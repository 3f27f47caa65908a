"""End to end over real sockets: proxy and upstreams as real uvicorn processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from migration_plans.control.processes import free_port, wait_until
from migration_plans.core.identity import IDENTITY_HEADER, verify_identity

if TYPE_CHECKING:
    from tests.proxy.conftest import Servers

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": "Bearer e2e-admin-token-0123456789"}


def routes(monolith: str, catalog: str, products_to: str = "monolith", *, version: int = 1) -> str:
    return f"""\
version: {version}
upstreams:
  monolith: {{url: "{monolith}"}}
  catalog:
    url: "{catalog}"
    timeouts: {{connect: 0.5, read: 5}}
    breaker: {{window: 6, min_calls: 3, failure_rate: 0.5, cooldown: 4}}
contexts:
  catalog:
    routes:
      - name: product-reads
        prefix: /api/v1/products/
        methods: [GET, HEAD]
        upstream: {products_to}
        fallback: {"true" if products_to != "monolith" else "false"}
      - name: product-writes
        prefix: /api/v1/products/
        methods: [POST, PUT, PATCH, DELETE]
        upstream: {products_to}
"""


@dataclass
class ClientLoop:
    """GETs one URL in a loop on a thread, recording which upstream answered."""

    url: str
    answers: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                try:
                    response = client.get(self.url)
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code} {response.text[:200]}")
                else:
                    self.answers.append(response.json()["upstream"])

    def last(self) -> str | None:
        return self.answers[-1] if self.answers else None


@contextmanager
def client_loop(url: str) -> Iterator[ClientLoop]:
    loop = ClientLoop(url)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(loop.answers) >= 5, timeout=15, what="first answers")
        yield loop
    finally:
        loop.stop.set()
        thread.join(timeout=15)


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` the way deploy tools do: write a sibling, then rename over it."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def admin(proxy: str, name: str) -> Any:
    return httpx.get(f"{proxy}/_strangler/{name}", headers=ADMIN, timeout=5).json()


def test_cutover_by_editing_the_yaml_under_load(servers: Servers, tmp_path: Path) -> None:
    _, monolith = servers.echo("monolith")
    _, catalog = servers.echo("catalog")
    path = tmp_path / "routes.yaml"
    path.write_text(routes(monolith, catalog))
    _, proxy = servers.proxy(path)
    first_hash = admin(proxy, "table")["hash"]
    with client_loop(f"{proxy}/api/v1/products/1/") as loop:
        write_atomically(path, routes(monolith, catalog, "catalog", version=2))
        wait_until(lambda: loop.last() == "catalog", timeout=15, what="route moved to catalog")
        moved_at = len(loop.answers)
        write_atomically(path, "upstreams:\n  monolith: {url: http://x}\ncontexts: [broken\n")
        wait_until(
            lambda: admin(proxy, "table")["last_reload_error"] is not None,
            timeout=15,
            what="bad table reported",
        )
        served = len(loop.answers)
        wait_until(lambda: len(loop.answers) >= served + 20, timeout=15, what="more answers")
    table = admin(proxy, "table")
    metrics = httpx.get(f"{proxy}/_strangler/metrics", headers=ADMIN).text
    assert loop.failures == []
    first_catalog = loop.answers.index("catalog")
    assert set(loop.answers[:first_catalog]) == {"monolith"}
    assert set(loop.answers[first_catalog:]) == {"catalog"}  # atomic swap, never back
    assert len(loop.answers) > moved_at
    assert table["version"] == "2" and table["hash"] != first_hash and table["generation"] == 2
    assert "YAML syntax" in table["last_reload_error"]["issues"][0]
    assert "strangler_proxy_reload_failing 1.0" in metrics
    health = httpx.get(f"{proxy}/_strangler/health").json()
    assert health["reload_failing"] is True


def test_sighup_reloads(servers: Servers, tmp_path: Path) -> None:
    _, monolith = servers.echo("monolith")
    _, catalog = servers.echo("catalog")
    path = tmp_path / "routes.yaml"
    path.write_text(routes(monolith, catalog))
    process, proxy = servers.proxy(path, reload_interval=3600)
    assert httpx.get(f"{proxy}/api/v1/products/1/").json()["upstream"] == "monolith"
    path.write_text(routes(monolith, catalog, "catalog", version=2))
    process.signal(signal.SIGHUP)
    wait_until(
        lambda: httpx.get(f"{proxy}/api/v1/products/1/").json()["upstream"] == "catalog",
        timeout=10,
        what="SIGHUP reload",
    )
    assert admin(proxy, "table")["version"] == "2"


def test_workers_share_the_port_and_all_reload_on_sighup(servers: Servers, tmp_path: Path) -> None:
    _, monolith = servers.echo("monolith")
    _, catalog = servers.echo("catalog")
    path = tmp_path / "routes.yaml"
    path.write_text(routes(monolith, catalog))
    process, proxy = servers.proxy(path, reload_interval=3600, workers=2)
    url = f"{proxy}/api/v1/products/1/"
    assert {httpx.get(url).json()["upstream"] for _ in range(10)} == {"monolith"}
    path.write_text(routes(monolith, catalog, "catalog", version=2))
    os.kill(process.pid, signal.SIGHUP)  # the supervisor only: it forwards to its workers
    wait_until(
        lambda: {httpx.get(url).json()["upstream"] for _ in range(10)} == {"catalog"},
        timeout=15,
        what="every worker reloaded",
    )
    assert process.stop() == 0


@pytest.mark.slow
def test_breaker_opens_when_service_dies_and_reads_fall_back(
    servers: Servers, tmp_path: Path
) -> None:
    _, monolith = servers.echo("monolith")
    catalog_process, catalog = servers.echo("catalog")
    path = tmp_path / "routes.yaml"
    path.write_text(routes(monolith, catalog, "catalog"))
    _, proxy = servers.proxy(path)
    with client_loop(f"{proxy}/api/v1/products/1/") as loop:
        wait_until(lambda: loop.last() == "catalog", timeout=10, what="catalog answers")
        catalog_process.kill()
        wait_until(
            lambda: admin(proxy, "breakers")["catalog"]["state"] == "open",
            timeout=15,
            what="breaker open",
        )
        write = httpx.post(f"{proxy}/api/v1/products/", json={"name": "x"})
        served = len(loop.answers)
        wait_until(lambda: len(loop.answers) >= served + 20, timeout=15, what="reads go on")
        assert set(loop.answers[served:]) == {"monolith"}
        servers.echo("catalog", port=int(catalog.rsplit(":", 1)[1]))
        wait_until(lambda: loop.last() == "catalog", timeout=30, what="breaker closes again")
    assert loop.failures == []  # every read answered, by the service or the monolith
    assert write.status_code == 503 and write.json()["code"] == "breaker_open"
    assert admin(proxy, "breakers")["catalog"]["state"] == "closed"
    metrics = httpx.get(f"{proxy}/_strangler/metrics", headers=ADMIN).text
    assert 'strangler_proxy_breaker_transitions_total{state="open",upstream="catalog"}' in metrics


def raw_request(url: str, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes or goes quiet."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
    return b"".join(chunks)


def test_hop_by_hop_and_spoofed_headers_do_not_reach_upstreams(
    servers: Servers, tmp_path: Path
) -> None:
    _, monolith = servers.echo("monolith")
    path = tmp_path / "routes.yaml"
    path.write_text(routes(monolith, monolith))
    _, proxy = servers.proxy(path)
    request = (
        b"GET /api/v1/orders/?q=1 HTTP/1.1\r\nHost: shop.example\r\n"
        b"Connection: close, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=9\r\nTE: trailers\r\n"
        b"Upgrade: websocket\r\nProxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive\r\n"
        b"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\n"
        b"Forwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nX-Strangler-Phase: split\r\n"
        + IDENTITY_HEADER.encode()
        + b": forged.sig\r\nX-Request-ID: trace-42\r\n\r\n"
    )
    response = raw_request(proxy, request)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    echoed = json.loads(body)
    names = [name for name, _ in echoed["headers"]]
    for name in (
        "x-hop",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "forwarded",
        "x-real-ip",
        "x-strangler-phase",
        IDENTITY_HEADER.lower(),
    ):
        assert name not in names, name
    headers = dict(echoed["headers"])
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == "shop.example"
    assert headers["host"] == monolith.removeprefix("http://")  # host_header: upstream
    assert headers["x-request-id"] == "trace-42"
    assert names.count("x-forwarded-for") == 1


SMUGGLING = [
    b"POST /api/v1/orders/ HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /api/v1/orders/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
    b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /api/v1/orders/ HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n"
    b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /api/v1/orders/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\nContent-Length: 4\r\n\r\n"
    b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /api/v1/orders/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n"
    b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /api/v1/orders/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n"
    b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /a/..%2f..%2fadmin HTTP/1.1\r\nHost: a\r\n\r\n",
]


def test_smuggling_attempts_rejected(servers: Servers, tmp_path: Path) -> None:
    _, monolith = servers.echo("monolith")
    path = tmp_path / "routes.yaml"
    path.write_text(routes(monolith, monolith))
    _, proxy = servers.proxy(path)
    for attempt in SMUGGLING:
        response = raw_request(proxy, attempt, timeout=2)
        assert response.startswith(b"HTTP/1.1 400"), (attempt, response[:200])
        assert response.count(b"HTTP/1.1 ") == 1, response  # nothing smuggled behind it
        assert b"/smuggled" not in response


def test_streams_large_bodies_both_ways(servers: Servers, tmp_path: Path) -> None:
    _, monolith = servers.echo("monolith")
    path = tmp_path / "routes.yaml"
    path.write_text(routes(monolith, monolith))
    _, proxy = servers.proxy(path)

    def chunks() -> Iterator[bytes]:
        for _ in range(32):
            yield b"b" * 65536

    with httpx.Client(timeout=20) as client:
        upload = client.post(f"{proxy}/upload", content=chunks())
        download = client.get(f"{proxy}/big/5000000")
    assert upload.json()["body_length"] == 32 * 65536
    assert len(download.content) == 5_000_000


@pytest.mark.slow
def test_in_front_of_the_real_monolith_with_token_auth(servers: Servers, tmp_path: Path) -> None:
    env = {"SECRET_KEY": "e2e-secret", "DATABASE_URL": f"sqlite:///{tmp_path}/monolith.sqlite3"}
    for command in (["migrate"], ["seed", "--products", "30", "--customers", "3", "--orders", "3"]):
        subprocess.run(
            [sys.executable, "-m", "legacy_monolith.cli", *command],
            env={**os.environ, **env}, cwd=tmp_path, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    port = free_port()
    servers.processes(
        [sys.executable, "-m", "legacy_monolith.cli", "serve", "--port", str(port)],
        name="monolith", health_url=f"http://127.0.0.1:{port}/healthz", env=env,
    )  # fmt: skip
    monolith = f"http://127.0.0.1:{port}"
    _, catalog = servers.echo("catalog")
    path = tmp_path / "routes.yaml"
    table = routes(monolith, catalog).replace("contexts:", "auth: {upstream: monolith}\ncontexts:")
    table = table.replace(
        "prefix: /api/v1/products/\n        methods: [GET, HEAD]",
        "prefix: /api/v1/categories/\n        methods: [GET, HEAD]",
    )
    path.write_text(
        table.replace(
            "upstream: monolith\n        fallback: false",
            "upstream: catalog\n        fallback: true",
            1,
        )
    )
    key = "e2e-identity-key-0123456789"
    _, proxy = servers.proxy(path, env={"STRANGLER_IDENTITY_KEY": key})
    with httpx.Client(base_url=proxy, timeout=10) as client:
        login = client.post(
            "/api/v1/auth/token/", json={"username": "customer000001", "password": "password"}
        )
        token = login.json()["token"]
        product = client.get("/api/v1/products/1/")
        mine = client.get("/api/v1/categories/", headers={"Authorization": f"Token {token}"})
        stolen = client.get("/api/v1/categories/", headers={"Authorization": "Token 0000"})
        whoami = client.get("/api/v1/auth/whoami/", headers={"Authorization": f"Token {token}"})
    assert product.status_code == 200 and product.json()["sku"] == "SKU-0000001"
    assert product.headers["x-request-id"]
    echoed = dict(mine.json()["headers"])
    identity = verify_identity(
        echoed[IDENTITY_HEADER.lower()], key=key.encode(), audience="catalog"
    )
    assert (
        (identity.sub, identity.name)
        == ("1", "customer000001")
        == (str(whoami.json()["id"]), whoami.json()["username"])
    )
    assert stolen.status_code == 401 and stolen.json()["code"] == "invalid_token"
