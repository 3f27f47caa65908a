"""One meaning per header, no injected Host, no double-encoded paths, keyed canaries,
private /metrics, safe reloads: a real proxy process in front of echo upstreams that
record the exact headers they receive (issue #18)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from migration_plans.control.processes import ManagedProcess, free_port, uvicorn_argv, wait_until
from strangler_proxy.routetable.model import Canary
from strangler_proxy.routing._canary import choose
from tests.proxy.conftest import ADMIN_TOKEN, REPO_ROOT
from tests.proxy.test_e2e import ADMIN, raw_request, write_atomically

pytestmark = pytest.mark.e2e

CANARY_KEY = "e2e-canary-key-0123456789"


def table(monolith: str, catalog: str) -> str:
    return f"""\
version: 1
upstreams:
  monolith: {{url: "{monolith}"}}
  catalog: {{url: "{catalog}", host_header: client}}
allowed_hosts: [shop.example]
contexts:
  catalog:
    routes:
      - name: product-reads
        prefix: /api/v1/products/
        upstream: catalog
      - name: categories
        prefix: /api/v1/categories/
        canary:
          split: {{monolith: 50, catalog: 50}}
          sticky: {{cookie: sid}}
      - name: shadowed
        prefix: /api/v1/shadowed/
        methods: [GET]
        upstream: monolith
        shadow: {{upstream: catalog}}
"""


@dataclass
class Edge:
    proxy: str
    monolith: str
    catalog: str
    routes: Path

    def send(self, request: bytes) -> tuple[int, dict[str, Any]]:
        """Status and JSON body of one raw request."""
        response = raw_request(self.proxy, request, timeout=2)
        head, _, body = response.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), json.loads(body) if body else {}

    def seen(self, upstream: str) -> list[str]:
        """Every request ``upstream`` answered so far, as ``METHOD /path``."""
        return list(httpx.get(f"{upstream}/_seen", timeout=5).json()["seen"])


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    """One proxy and two echo upstreams for the whole module (each test reads its own
    requests off the echo's log, so they do not depend on each other)."""
    tmp_path = tmp_path_factory.mktemp("edge")
    started: list[ManagedProcess] = []

    def start(argv: list[str], name: str, health: str, env: dict[str, str]) -> None:
        started.append(
            ManagedProcess.start(
                argv, name=name, health_url=health, env=env, cwd=REPO_ROOT, log_dir=tmp_path
            )
        )

    try:
        upstreams = []
        for name in ("monolith", "catalog"):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            argv = uvicorn_argv("tests.proxy.echo_app:app", port)
            start(argv, f"echo-{name}", f"{url}/healthz", {"ECHO_NAME": name})
            upstreams.append(url)
        routes = tmp_path / "routes.yaml"
        routes.write_text(table(*upstreams))
        port = free_port()
        argv = [sys.executable, "-m", "strangler_proxy", "serve", "--routes", str(routes)]
        argv += ["--port", str(port), "--reload-interval", "0.1", "--no-access-log"]
        proxy = f"http://127.0.0.1:{port}"
        env = {
            "STRANGLER_ADMIN_TOKEN": ADMIN_TOKEN,
            "STRANGLER_CANARY_KEY": CANARY_KEY,
            "STRANGLER_LIVE_PHASE": "off",
        }
        start(argv, "proxy", f"{proxy}/_strangler/health", env)
        yield Edge(proxy, upstreams[0], upstreams[1], routes)
    finally:
        for process in reversed(started):
            process.stop()


def test_one_host_one_authorization_and_no_underscore_spellings(edge: Edge) -> None:
    refused = {
        "two hosts": b"GET /api/v1/orders/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "no host": b"GET /api/v1/orders/ HTTP/1.1\r\nX-A: 1\r\n\r\n",
        "two authorizations": b"GET /api/v1/orders/ HTTP/1.1\r\nHost: a\r\n"
        b"Authorization: Token a\r\nAuthorization: Token b\r\n\r\n",
    }
    before = edge.seen(edge.monolith)
    for what, request in refused.items():
        status, body = edge.send(request)
        assert (status, body["code"]) == (400, "bad_request"), what
        assert body["request_id"] and (
            "Host" in body["detail"] or "Authorization" in body["detail"]
        )
    assert edge.seen(edge.monolith) == before  # nothing ambiguous went upstream
    status, echoed = edge.send(
        b"GET /api/v1/orders/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX_Forwarded_For: 6.6.6.6\r\n"
        b"X_Strangler_Identity: forged.sig\r\nX_User_ID: 1\r\nX-User-ID: 2\r\n"
        b"X_Request_ID: x\r\nHOST_: a\r\nConnection: close\r\n\r\n"
    )
    names = [name for name, _ in echoed["headers"]]
    assert status == 200 and not [name for name in names if "_" in name], names
    assert dict(echoed["headers"])["x-user-id"] == "2"
    status, _ = edge.send(b"GET /api/v1/orders/ HTTP/1.0\r\n\r\n")  # 1.0 needs no Host
    assert status == 200


def test_the_client_cannot_choose_the_host_an_upstream_sees(edge: Edge) -> None:
    injected = b"Host: evil.example/phish?x=\r\nConnection: close\r\n\r\n"
    status, echoed = edge.send(b"GET /api/v1/orders/?page=2 HTTP/1.1\r\n" + injected)
    assert status == 200 and echoed["upstream"] == "monolith"
    headers = dict(echoed["headers"])
    assert headers["host"] == edge.monolith.removeprefix("http://")  # default: upstream
    before = edge.seen(edge.catalog)
    status, body = edge.send(b"GET /api/v1/products/ HTTP/1.1\r\n" + injected)
    assert (status, body["code"]) == (400, "disallowed_host")
    assert "allowed_hosts" in body["detail"]
    assert edge.seen(edge.catalog) == before
    status, echoed = edge.send(
        b"GET /api/v1/products/ HTTP/1.1\r\nHost: shop.example:8443\r\nConnection: close\r\n\r\n"
    )
    assert status == 200 and dict(echoed["headers"])["host"] == "shop.example:8443"


def test_a_shadow_copy_carries_the_primarys_host(edge: Edge) -> None:
    """The primary built its links from its Host: the copy must, or every page differs."""
    primary = httpx.get(f"{edge.proxy}/api/v1/shadowed/?page=2", timeout=5).json()
    host = dict(primary["headers"])["host"]
    assert host == edge.monolith.removeprefix("http://")

    def mirrored() -> list[str]:
        hosts = httpx.get(f"{edge.catalog}/_hosts", timeout=5).json()["hosts"]
        return [seen for path, seen in hosts if path == "/api/v1/shadowed/"]

    wait_until(lambda: bool(mirrored()), timeout=15, what="the shadow copy")
    assert mirrored() == [host]


def test_double_encoded_dot_segments_and_slashes_are_refused(edge: Edge) -> None:
    for path in (
        b"/api/v1/products/%252e%252e/admin",
        b"/a%252Fb",
        b"/a/%255cb",
        b"/x/%252E%252e/",
    ):
        status, body = edge.send(b"GET " + path + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        assert (status, body["code"]) == (400, "bad_path"), path
        assert "double-encoded" in body["detail"]
    status, echoed = edge.send(b"GET /a/100%25 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert (status, echoed["raw_path"]) == (200, "/a/100%25")


def test_metrics_of_upstreams_are_not_exposed(edge: Edge) -> None:
    before = edge.seen(edge.monolith)
    for path in ("/metrics", "/metrics/", "/metrics/x", "/%6detrics"):
        response = httpx.get(f"{edge.proxy}{path}", timeout=5)
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), path
    assert httpx.get(f"{edge.proxy}/metricsx", timeout=5).json()["upstream"] == "monolith"
    assert edge.seen(edge.monolith) == [*before, "GET /metricsx"]
    assert httpx.get(f"{edge.proxy}/_strangler/metrics", headers=ADMIN).status_code == 200


def test_canary_sides_follow_the_replicas_secret(edge: Edge) -> None:
    canary = Canary(split={"monolith": 50, "catalog": 50})
    key = CANARY_KEY.encode()
    # Cookies a client would pick from the public algorithm: under the secret they land
    # wherever the keyed hash puts them, not where the client computed.
    picked = [f"s{n}" for n in range(200) if choose(canary, "categories", f"s{n}") == "catalog"]
    with httpx.Client(base_url=edge.proxy, timeout=5) as client:
        sides = [
            client.get(
                "/api/v1/categories/", headers={"Host": "shop.example", "Cookie": f"sid={sid}"}
            ).json()["upstream"]
            for sid in picked[:40]
        ]
    assert sides == [choose(canary, "categories", sid, key) for sid in picked[:40]]
    assert set(sides) == {"monolith", "catalog"}


def wait_for_reload_error(proxy: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def refused() -> bool:
        found.update(httpx.get(f"{proxy}/_strangler/table", headers=ADMIN, timeout=5).json())
        return found["last_reload_error"] is not None

    wait_until(refused, timeout=15, what="reload refused")
    return found


def alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_and_the_last_good_table_keeps_serving(edge: Edge) -> None:
    good = edge.routes.read_text()
    serving = httpx.get(f"{edge.proxy}/_strangler/table", headers=ADMIN, timeout=5).json()
    write_atomically(edge.routes, good + alias_bomb())
    try:
        table = wait_for_reload_error(edge.proxy)
        issue = table["last_reload_error"]["issues"][0]
        line = len(good.splitlines()) + 2  # the first alias
        assert issue.startswith(f"{edge.routes}:{line}: YAML alias *a0 is not allowed"), issue
        assert table["hash"] == serving["hash"]
        asked = httpx.post(f"{edge.proxy}/_strangler/reload", headers=ADMIN, timeout=5).json()
        assert asked["reloaded"] is False and asked["hash"] == serving["hash"]
        assert "YAML alias *a0" in asked["last_reload_error"]["issues"][0]
        response = httpx.get(f"{edge.proxy}/api/v1/orders/", timeout=5)
        assert response.json()["upstream"] == "monolith"
    finally:
        write_atomically(edge.routes, good)
        wait_until(
            lambda: not reload_failing(edge.proxy),
            timeout=15,
            what="good table back",
        )


def reload_failing(proxy: str) -> bool:
    return bool(httpx.get(f"{proxy}/_strangler/health", timeout=5).json()["reload_failing"])
