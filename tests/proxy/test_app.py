"""The proxy in-process (httpx ASGITransport) in front of real in-process aiohttp upstreams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from pydantic import SecretStr

from migration_plans.core.identity import IDENTITY_HEADER, verify_identity
from migration_plans.core.yamlfile import ConfigError
from strangler_proxy.app import StranglerProxy
from strangler_proxy.config import ProxyConfig
from tests.proxy.test_upstream_client import RawServer, read_request

if TYPE_CHECKING:
    from tests.proxy.conftest import EchoUpstream

pytestmark = pytest.mark.anyio

TOKEN = "admin-token-0123456789"
KEY = "identity-key-0123456789"


def table_text(monolith: str, catalog: str, extra: str = "") -> str:
    return f"""\
version: v1
upstreams:
  monolith: {{url: "{monolith}"}}
  catalog:
    url: "{catalog}"
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


def make_proxy(tmp_path: Path, text: str, **config: Any) -> StranglerProxy:
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    settings = ProxyConfig(routes=path, admin_token=SecretStr(TOKEN), access_log=False, **config)
    return StranglerProxy(settings, environ={"STRANGLER_IDENTITY_KEY": KEY})


def client(proxy: StranglerProxy) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=proxy, client=("10.1.2.3", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://shop.test")


async def test_forwards_with_clean_headers(
    tmp_path: Path, monolith: EchoUpstream, catalog: EchoUpstream
) -> None:
    proxy = make_proxy(tmp_path, table_text(monolith.url, catalog.url))
    async with client(proxy) as http:
        response = await http.get(
            "/api/v1/products/3/?x=1",
            headers={
                "X-Strangler-Phase": "split",
                IDENTITY_HEADER: "forged",
                "X-Forwarded-For": "6.6.6.6",
                "X-Forwarded-Host": "evil",
                "Forwarded": "for=6.6.6.6",
                "Connection": "keep-alive, X-Secret-Hop",
                "X-Secret-Hop": "1",
                "Keep-Alive": "timeout=5",
                "Proxy-Authorization": "Basic Zm9v",
                "TE": "trailers",
                "Upgrade": "h2c",
                "X-Request-ID": "req-123",
                "X-Custom": "kept",
            },
        )
    await proxy.stop()
    assert response.status_code == 200
    echoed = response.json()
    headers = dict(echoed["headers"])
    assert echoed["upstream"] == "catalog" and echoed["raw_path"] == "/api/v1/products/3/?x=1"
    for name in (
        "x-strangler-phase",
        IDENTITY_HEADER.lower(),
        "forwarded",
        "x-secret-hop",
        "keep-alive",
        "proxy-authorization",
        "te",
        "upgrade",
    ):
        assert name not in headers, name
    assert headers["x-forwarded-for"] == "10.1.2.3"
    assert headers["x-forwarded-host"] == "shop.test"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["host"] == catalog.url.removeprefix("http://")  # host_header: upstream
    assert headers["x-request-id"] == "req-123" == response.headers["x-request-id"]
    assert headers["x-custom"] == "kept"
    assert "user-agent" in headers and "accept-encoding" in headers  # the client's own


async def test_request_id_generated_and_default_route(
    tmp_path: Path, monolith: EchoUpstream, catalog: EchoUpstream
) -> None:
    proxy = make_proxy(tmp_path, table_text(monolith.url, catalog.url))
    async with client(proxy) as http:
        response = await http.post(
            "/api/v1/orders/", content=b"x" * 100_000, headers={"X-Request-ID": "bad id!"}
        )
    await proxy.stop()
    echoed = response.json()
    assert echoed["upstream"] == "monolith" and echoed["body_length"] == 100_000
    request_id = dict(echoed["headers"])["x-request-id"]
    assert len(request_id) == 32 and request_id == response.headers["x-request-id"]


async def test_proxy_errors_are_json(
    tmp_path: Path, monolith: EchoUpstream, catalog: EchoUpstream
) -> None:
    proxy = make_proxy(tmp_path, table_text(monolith.url, catalog.url), max_body_bytes=1000)
    async with client(proxy) as http:
        bad = await http.get("/api/v1/products/..%2f..%2fadmin")
        big = await http.post("/api/v1/orders/", content=b"x" * 1001)
        long = await http.get("/" + "a" * 9000)
    await proxy.stop()
    assert bad.status_code == 400
    body = bad.json()
    assert body["code"] == "bad_path" and body["request_id"] == bad.headers["x-request-id"]
    assert big.status_code == 413 and big.json()["code"] == "body_too_large"
    assert long.status_code == 414 and long.json()["code"] == "path_too_long"


async def call_asgi(
    proxy: StranglerProxy, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> tuple[int, dict[str, Any]]:
    scope = {
        "type": "http", "method": "POST", "path": "/x", "raw_path": b"/x", "query_string": b"",
        "headers": headers, "client": ("1.1.1.1", 1), "scheme": "http", "http_version": "1.1",
    }  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    await proxy(scope, receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"])


@pytest.mark.parametrize(
    "framing",
    [
        [(b"content-length", b"4"), (b"transfer-encoding", b"chunked")],
        [(b"transfer-encoding", b"chunked"), (b"content-length", b"0")],
        [(b"content-length", b"4"), (b"content-length", b"5")],
        [(b"content-length", b"4, 5")],
        [(b"content-length", b"-1")],
        [(b"content-length", b"0x4")],
        [(b"transfer-encoding", b"gzip, chunked")],
        [(b"transfer-encoding", b"xchunked")],
        [(b"transfer-encoding", b"chunked"), (b"transfer-encoding", b"identity")],
    ],
)
async def test_smuggling_framing_refused(
    tmp_path: Path, framing: list[tuple[bytes, bytes]]
) -> None:
    proxy = make_proxy(tmp_path, table_text("http://127.0.0.1:9", "http://127.0.0.1:9"))
    status, body = await call_asgi(proxy, [(b"host", b"a"), *framing], b"0\r\n\r\n")
    assert (status, body["code"]) == (400, "bad_request")


async def test_oversized_headers_refused(tmp_path: Path) -> None:
    proxy = make_proxy(
        tmp_path, table_text("http://127.0.0.1:9", "http://127.0.0.1:9"), max_header_bytes=2048
    )
    status, body = await call_asgi(proxy, [(b"x-big", b"y" * 3000)])
    assert (status, body["code"]) == (431, "headers_too_large")


async def test_breaker_opens_reads_fall_back_writes_refused(
    tmp_path: Path, monolith: EchoUpstream
) -> None:
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    proxy = make_proxy(tmp_path, table_text(monolith.url, dead))
    async with client(proxy) as http:
        reads = [await http.get(f"/api/v1/products/{n}/") for n in range(4)]
        write_1 = await http.post("/api/v1/categories/", content=b"{}")
        write_2 = await http.post("/api/v1/categories/", content=b"{}")
        breakers = await http.get(
            "/_strangler/breakers", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        metrics = await http.get(
            "/_strangler/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
        )
    await proxy.stop()
    assert [r.json()["upstream"] for r in reads] == ["monolith"] * 4
    assert write_1.status_code == 503 and write_1.json()["code"] == "breaker_open"
    assert write_2.status_code == 503
    assert breakers.json()["catalog"]["state"] == "open"
    text = metrics.text
    assert 'strangler_proxy_breaker_state{upstream="catalog"} 2.0' in text
    assert (
        'strangler_proxy_fallbacks_total{from_upstream="catalog",route="product-reads",to_upstream="monolith"}'
        in text
    )
    assert (
        'strangler_proxy_errors_total{code="breaker_open",route="categories",upstream="catalog"} 2.0'
        in text
    )


async def test_an_upstream_dying_mid_answer_falls_back_for_a_read_only(
    tmp_path: Path, monolith: EchoUpstream
) -> None:
    """A safe request whose buffered answer breaks off (nothing sent to the client yet)
    goes to the fallback like an unreachable upstream; a write gets its 502."""

    async def cuts_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()
        writer.close()

    async with RawServer(cuts_body) as dying:
        proxy = make_proxy(tmp_path, table_text(monolith.url, f"http://127.0.0.1:{dying.port}"))
        async with client(proxy) as http:
            read = await http.get("/api/v1/products/7/")
            write = await http.post("/api/v1/categories/", content=b"{}")
        await proxy.stop()
    assert read.status_code == 200 and read.json()["upstream"] == "monolith"
    assert write.status_code == 502 and write.json()["code"] == "upstream_failed"


async def test_connect_failure_without_fallback_is_502(
    tmp_path: Path, monolith: EchoUpstream
) -> None:
    proxy = make_proxy(tmp_path, table_text(monolith.url, "http://127.0.0.1:9"))
    async with client(proxy) as http:
        response = await http.post("/api/v1/categories/", content=b"{}")
    await proxy.stop()
    assert response.status_code == 502 and response.json()["code"] == "upstream_failed"


async def test_upstream_5xx_passes_through(
    tmp_path: Path, monolith: EchoUpstream, catalog: EchoUpstream
) -> None:
    proxy = make_proxy(tmp_path, table_text(monolith.url, catalog.url))
    async with client(proxy) as http:
        response = await http.get("/status/503")
    await proxy.stop()
    assert response.status_code == 503 and response.json() == {"upstream": "monolith"}


async def test_admin_api(tmp_path: Path, monolith: EchoUpstream, catalog: EchoUpstream) -> None:
    proxy = make_proxy(tmp_path, table_text(monolith.url, catalog.url))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with client(proxy) as http:
        health = await http.get("/_strangler/health")
        anonymous = await http.get("/_strangler/table")
        wrong = await http.get("/_strangler/table", headers={"Authorization": "Bearer nope"})
        table = await http.get("/_strangler/table", headers=auth)
        missing = await http.get("/_strangler/nothing", headers=auth)
    await proxy.stop()
    assert health.json()["status"] == "ok" and health.json()["table"]["version"] == "v1"
    assert anonymous.status_code == wrong.status_code == 401
    assert wrong.json()["code"] == "unauthorized"
    data = table.json()
    assert data["routes"] == ["product-reads", "categories"] and data["last_reload_error"] is None
    assert len(data["hash"]) == 12 and data["generation"] == 1
    assert missing.status_code == 404


async def test_admin_disabled_without_token(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(table_text("http://127.0.0.1:9", "http://127.0.0.1:9"))
    proxy = StranglerProxy(ProxyConfig(routes=path, access_log=False))
    async with client(proxy) as http:
        response = await http.get("/_strangler/table", headers={"Authorization": "Bearer "})
    assert response.status_code == 401 and "disabled" in response.json()["detail"]


async def test_reload_swaps_only_valid_tables(
    tmp_path: Path, monolith: EchoUpstream, catalog: EchoUpstream
) -> None:
    proxy = make_proxy(tmp_path, table_text(monolith.url, catalog.url))
    path = tmp_path / "routes.yaml"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with client(proxy) as http:
        assert (await http.get("/api/v1/products/1/")).json()["upstream"] == "catalog"
        path.write_text(
            table_text(monolith.url, catalog.url).replace(
                "upstream: catalog\n        fallback: true", "upstream: monolith"
            )
        )
        reload = await http.post("/_strangler/reload", headers=auth)
        assert reload.json()["reloaded"] is True and reload.json()["generation"] == 2
        assert (await http.get("/api/v1/products/1/")).json()["upstream"] == "monolith"
        path.write_text("upstreams: {monolith: {url: nope}}\n")
        failed = await http.post("/_strangler/reload", headers=auth)
        assert failed.json()["reloaded"] is False
        assert (await http.get("/api/v1/products/1/")).json()["upstream"] == "monolith"
        metrics = (await http.get("/_strangler/metrics", headers=auth)).text
    await proxy.stop()
    error = failed.json()["last_reload_error"]
    assert error["issues"][0].startswith(f"{path}:1: upstreams.monolith.url:")
    assert "strangler_proxy_reload_failing 1.0" in metrics
    assert 'strangler_proxy_reloads_total{result="failed"} 1.0' in metrics
    assert 'strangler_proxy_reloads_total{result="ok"} 1.0' in metrics


AUTH = "auth: {upstream: monolith, cache_ttl: 30}\n"


async def test_token_auth_signs_identity(
    tmp_path: Path, monolith: EchoUpstream, catalog: EchoUpstream
) -> None:
    proxy = make_proxy(tmp_path, table_text(monolith.url, catalog.url, AUTH))
    async with client(proxy) as http:
        good = [
            await http.get("/api/v1/products/1/", headers={"Authorization": "Token good-token"})
            for _ in range(3)
        ]
        bad = await http.get("/api/v1/products/1/", headers={"Authorization": "Token stolen"})
        anonymous = await http.get("/api/v1/products/1/", headers={IDENTITY_HEADER: "forged"})
    await proxy.stop()
    headers = dict(good[0].json()["headers"])
    identity = verify_identity(
        headers[IDENTITY_HEADER.lower()], key=KEY.encode(), audience="catalog"
    )
    assert (identity.sub, identity.name) == ("7", "alice")
    assert headers["authorization"] == "Token good-token"
    assert monolith.whoami_calls == 2  # good token cached, the stolen one checked once
    assert bad.status_code == 401 and bad.json()["code"] == "invalid_token"
    assert IDENTITY_HEADER.lower() not in dict(anonymous.json()["headers"])


async def test_auth_needs_the_signing_key(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(table_text("http://127.0.0.1:9", "http://127.0.0.1:9", AUTH))
    with pytest.raises(ConfigError, match="STRANGLER_IDENTITY_KEY is not set"):
        StranglerProxy(ProxyConfig(routes=path), environ={})


async def test_streams_large_responses(
    tmp_path: Path, monolith: EchoUpstream, catalog: EchoUpstream
) -> None:
    proxy = make_proxy(tmp_path, table_text(monolith.url, catalog.url), buffer_bytes=1024)
    async with client(proxy) as http:
        response = await http.post("/anything", content=b"z" * 300_000)
    await proxy.stop()
    assert response.json()["body_length"] == 300_000
    assert "set-cookie" in response.headers  # passed through, never stored by the proxy


async def test_streamed_body_over_the_limit_is_413(
    tmp_path: Path, monolith: EchoUpstream, catalog: EchoUpstream
) -> None:
    proxy = make_proxy(tmp_path, table_text(monolith.url, catalog.url), max_body_bytes=100_000)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"c" * 40_000

    async with client(proxy) as http:
        response = await http.post("/upload", content=chunks())
        fine = await http.post("/upload", content=b"d" * 90_000)
    await proxy.stop()
    assert response.status_code == 413 and response.json()["code"] == "body_too_large"
    assert fine.json()["body_length"] == 90_000
