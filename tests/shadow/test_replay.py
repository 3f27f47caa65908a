"""Offline replay of real captures: mitmdump in reverse mode, HAR files, recorded samples."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from migration_plans.control.processes import ManagedProcess, free_port
from migration_plans.core.identity import IDENTITY_HEADER, verify_identity
from strangler_proxy.shadow._captures import CapturedExchange, CaptureError, read_capture
from strangler_proxy.shadow._recorder import FlowRecorder
from strangler_proxy.shadow._redaction import REDACTED
from strangler_proxy.shadow._replay import ReplayOptions, endpoint_name, replay
from strangler_proxy.shadow.cli import shadow_app
from strangler_proxy.shadow.exchange import CapturedRequest, CapturedResponse
from strangler_proxy.shadow.store import MemoryShadowStore

from .conftest import MITMDUMP, REPO_ROOT, Shops

pytestmark = pytest.mark.e2e

TRAFFIC = [
    ("GET", "/api/v1/products/"),
    ("GET", "/api/v1/products/1/"),
    ("GET", "/api/v1/products/2/"),
    ("GET", "/api/v1/categories/"),
    ("GET", "/robots.txt"),
    ("POST", "/api/v1/products/"),
]


def capture_with_mitmdump(
    upstream: str,
    target: Path,
    log_dir: Path,
    *,
    traffic: list[tuple[str, str]] = TRAFFIC,
    port: int | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Run mitmdump in reverse mode in front of ``upstream`` and send ``traffic`` through it."""
    port = port or free_port()
    argv = [
        str(MITMDUMP), "--mode", f"reverse:{upstream}", "--listen-host", "127.0.0.1",
        "--listen-port", str(port), "-w", str(target), "--set", f"confdir={log_dir / 'mitm'}",
        "-q",
    ]  # fmt: skip
    with (
        ManagedProcess.start(
            argv,
            name="mitmdump",
            health_url=f"http://127.0.0.1:{port}/healthz",
            cwd=REPO_ROOT,
            log_dir=log_dir,
            timeout=60,
        ),
        httpx.Client(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        for method, path in traffic:
            body = {"name": "Lamp", "password": "x"} if method == "POST" else None
            response = client.request(method, path, json=body, headers=headers)
            assert response.status_code < 500, response.text


def test_mitmdump_capture_replays_against_two_upstreams(
    shops: Shops, tmp_path: Path, mitm_python: Path
) -> None:
    capture = tmp_path / "capture.flows"
    capture_with_mitmdump(shops.primary, capture, tmp_path, headers={"Authorization": "Token s3"})

    exchanges = list(read_capture(capture))
    assert [(e.request.method, e.request.path) for e in exchanges] == [
        ("GET", "/healthz"),
        *TRAFFIC,
    ]
    assert exchanges[1].response is not None and exchanges[1].response.status == 200

    store = MemoryShadowStore()
    summary = asyncio.run(
        replay(
            exchanges,
            primary=shops.primary,
            candidate=shops.candidate,
            store=store,
            options=ReplayOptions(concurrency=3),
            second_primary=shops.primary,
        )
    )
    assert summary.outcomes == {"matched": 3, "mismatched": 3, "skipped_writes": 1}
    assert store.top_fields("GET /api/v1/products/{id}/") == [
        ("root['name']", 2),
        ("root['title']", 2),
    ]
    assert store.counts(route="GET /api/v1/categories/").mismatched == 1
    assert store.counts(route="GET /api/v1/products/").matched == 1
    assert store.noise() == {"GET /api/v1/products/": ("root['served_at']",)}
    assert store.counts(route="GET /robots.txt").matched == 1
    assert httpx.get(shops.candidate + "/_writes").json()["count"] == 0


def test_include_writes_replays_unsafe_methods(shops: Shops, shop: Callable[..., str]) -> None:
    disposable = shop("candidate")
    request = CapturedRequest(
        "POST", "/api/v1/products/", (("content-type", "application/json"),), b'{"name": "x"}'
    )
    store = MemoryShadowStore()

    summary = asyncio.run(
        replay(
            [CapturedExchange(request)],
            primary=shops.primary,
            candidate=disposable,
            store=store,
            options=ReplayOptions(include_writes=True),
        )
    )
    assert summary.outcomes == {"matched": 1}
    assert httpx.get(disposable + "/_writes").json()["count"] == 1


def har_file(path: Path) -> Path:
    def entry(method: str, url: str, text: str | None = None) -> dict[str, object]:
        request: dict[str, object] = {
            "method": method,
            "url": url,
            "httpVersion": "HTTP/1.1",
            "headers": [
                {"name": ":authority", "value": "shop"},
                {"name": "Accept", "value": "application/json"},
            ],
        }
        if text is not None:
            request["postData"] = {"mimeType": "application/json", "text": text}
        return {
            "request": request,
            "response": {"status": 200, "headers": [], "content": {"text": "{}"}},
        }

    document = {
        "log": {
            "version": "1.2",
            "entries": [
                entry("GET", "https://shop.example/api/v1/products/3/?expand=1"),
                entry("GET", "https://shop.example/api/v1/categories/"),
                entry("POST", "https://shop.example/api/v1/products/", '{"name": "x"}'),
            ],
        }
    }
    path.write_text(json.dumps(document))
    return path


def test_har_files_are_read_directly_and_replayed_from_the_cli(
    shops: Shops, tmp_path: Path
) -> None:
    har = har_file(tmp_path / "browser.har")
    exchanges = list(read_capture(har))
    assert exchanges[0].request.path == "/api/v1/products/3/?expand=1"
    assert exchanges[0].request.headers == (("Accept", "application/json"),)
    assert exchanges[2].request.body == b'{"name": "x"}'

    result = CliRunner().invoke(
        shadow_app,
        [
            "replay",
            str(har),
            "--primary",
            shops.primary,
            "--candidate",
            shops.candidate,
            "--format",
            "json",
            "--concurrency",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    routes = {r["route"]: r for r in document["routes"]}
    assert routes["GET /api/v1/products/{id}/"]["mismatched"] == 1
    assert routes["GET /api/v1/categories/"]["top_fields"][0]["path"].startswith("root['results']")
    assert "POST /api/v1/products/" not in routes


def test_unreadable_captures_are_reported(tmp_path: Path, mitm_python: Path) -> None:
    with pytest.raises(CaptureError, match="no such file"):
        list(read_capture(tmp_path / "missing.flows"))
    garbage = tmp_path / "garbage.flows"
    garbage.write_bytes(b"\x00\x01not a flow file at all")
    with pytest.raises(CaptureError, match="mitmproxy could not read it"):
        list(read_capture(garbage))


def test_recorder_writes_redacted_flows_that_mitmproxy_reads_back(
    tmp_path: Path, mitm_python: Path
) -> None:
    target = tmp_path / "sample.flows"
    request = CapturedRequest(
        "GET",
        "/api/v1/products/1/?token=abc",
        (("Authorization", "Token s3cret"), ("Accept", "*/*")),
    )
    response = CapturedResponse(
        200, (("content-type", "application/json"), ("Set-Cookie", "s=1")), b'{"id": 1}'
    )
    with FlowRecorder(target, origin="http://127.0.0.1:8001") as recorder:
        for _ in range(3):
            assert recorder.submit(request, response)
    assert recorder.stats["recorded"] == 3

    exchanges = list(read_capture(target))
    assert len(exchanges) == 3
    first = exchanges[0]
    assert first.origin == "http://127.0.0.1:8001"
    assert first.request.header("authorization") == REDACTED
    assert "abc" not in first.request.path
    assert first.response is not None and first.response.body == b'{"id": 1}'
    assert first.response.header("set-cookie") == REDACTED
    assert endpoint_name(first.request) == "GET /api/v1/products/{id}/"


def test_recorder_samples(tmp_path: Path, mitm_python: Path) -> None:
    values = iter([0.1, 0.9, 0.2, 0.8])
    recorder = FlowRecorder(
        tmp_path / "s.flows", sample_rate=0.5, sample=lambda: next(values)
    ).start()
    for _ in range(4):
        recorder.submit(CapturedRequest("GET", "/"), None)
    assert recorder.close() == 2
    assert recorder.stats["sampled_out"] == 2
    assert len(list(read_capture(tmp_path / "s.flows"))) == 2


def test_replay_takes_names_and_rules_from_the_route_table(shops: Shops, tmp_path: Path) -> None:
    har = har_file(tmp_path / "browser.har")
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        f"""
upstreams:
  monolith: {{url: "{shops.primary}"}}
  catalog: {{url: "{shops.candidate}"}}
contexts:
  catalog:
    routes:
      - name: product-detail
        path: /api/v1/products/{{id:int}}/
        methods: [GET]
        upstream: monolith
        shadow: {{upstream: catalog, compare: {{ignore_paths: ["root['name']", "root['title']"]}}}}
      - name: category-list
        path: /api/v1/categories/
        methods: [GET]
        upstream: monolith
        shadow: {{upstream: catalog, compare: {{ignore_order: true}}}}
"""
    )
    result = CliRunner().invoke(
        shadow_app,
        ["replay", str(har), "--primary", shops.primary, "--candidate", shops.candidate,
         "--routes", str(routes), "--format", "json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    found = {r["route"]: (r["context"], r["matched"], r["mismatched"]) for r in document["routes"]}
    assert found == {"product-detail": ("catalog", 1, 0), "category-list": ("catalog", 1, 0)}


def test_replay_keeps_the_captured_host_and_signs_the_identity_for_writes() -> None:
    """Issue #17, item 3: Host as captured, a fresh identity, writes alone and unmarked."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"next": f"http://{request.headers['host']}/?page=2"})

    captured = (("Host", "shop.example:8080"), (IDENTITY_HEADER, "stale.sig"))
    exchanges = [
        CapturedExchange(CapturedRequest("GET", "/api/v1/products/", captured)),
        CapturedExchange(CapturedRequest("POST", "/api/v1/products/", captured, b"{}")),
    ]
    store = MemoryShadowStore()
    options = ReplayOptions(include_writes=True, identity_key=b"k3y")
    summary = asyncio.run(
        replay(
            exchanges,
            primary="http://primary:1",
            candidate="http://candidate:2",
            store=store,
            options=options,
            transport=httpx.MockTransport(answer),
        )
    )
    assert summary.outcomes == {"matched": 2}
    assert {request.headers["host"] for request in seen} == {"shop.example:8080"}
    for request in seen:
        assert verify_identity(request.headers[IDENTITY_HEADER], key=b"k3y", audience="catalog").sub
        assert len(request.headers.get_list(IDENTITY_HEADER)) == 1
    shadow = [request.headers.get("x-strangler-shadow") for request in seen]
    assert shadow == ["replay", "replay", None, None]  # GET to both sides, then the POST
