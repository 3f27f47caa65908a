"""The proxy-side glue: shadow blocks of a real route table, the response tap, hand-off."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from strangler_proxy.routetable.loader import parse_table
from strangler_proxy.shadow.engine import MirrorEngine, MirrorMetrics, Submitted
from strangler_proxy.shadow.settings import ShadowSettings
from strangler_proxy.shadow.shadowing import Shadowing, _Plan, shadow_routes
from strangler_proxy.shadow.store import RedisShadowStore

from .conftest import Shops

TABLE = """
upstreams:
  monolith: {{url: "{primary}"}}
  catalog: {{url: "{candidate}"}}
contexts:
  catalog:
    routes:
      - name: product-detail
        path: /api/v1/products/{{id:int}}/
        methods: [GET]
        upstream: monolith
        shadow:
          upstream: catalog
          compare: {{ignore_paths: ["root['price']"], numeric_tolerance: 0.01}}
      - name: categories
        prefix: /api/v1/categories/
        methods: [GET]
        upstream: monolith
"""


def load(shops: Shops, tmp_path: Path) -> Any:
    text = TABLE.format(primary=shops.primary, candidate=shops.candidate)
    return parse_table(text, tmp_path / "routes.yaml").table


def test_shadow_blocks_become_mirror_routes(shops: Shops, tmp_path: Path) -> None:
    table = load(shops, tmp_path)
    found = list(shadow_routes(table).values())
    assert len(found) == 1
    route = found[0]
    assert (route.name, route.context, route.shadow_url) == (
        "product-detail",
        "catalog",
        shops.candidate,
    )
    assert route.rules.ignore_paths == ("root['price']",)
    assert route.rules.numeric_tolerance == 0.01


def test_settings_from_environment() -> None:
    settings = ShadowSettings.from_env(
        {"STRANGLER_SHADOW_QUEUE": "10", "STRANGLER_SHADOW_CONCURRENCY": "2"}
    )
    assert (settings.queue_size, settings.concurrency, settings.redis_url) == (10, 2, None)


@pytest.mark.e2e
@pytest.mark.redis
def test_tap_passes_the_response_through_and_mirrors_a_copy(
    shops: Shops, tmp_path: Path, store: RedisShadowStore
) -> None:
    table = load(shops, tmp_path)
    detail, categories = (route for _, _, route in table.located_routes())
    engine = MirrorEngine(store=store, metrics=MirrorMetrics(CollectorRegistry()))
    shadowing = Shadowing(engine, ShadowSettings(max_request_bytes=10, max_response_bytes=1000))
    shadowing.sync(table)
    sent: list[dict[str, Any]] = []

    async def client_send(message: Any) -> None:
        sent.append(message)

    body = b'{"id": 1, "name": "Lamp", "price": "79.19", "tags": ["home", "light"]}'
    messages: list[dict[str, Any]] = [
        {"type": "http.response.start", "status": 200,
         "headers": [(b"content-type", b"application/json")]},
        {"type": "http.response.body", "body": body[:20], "more_body": True},
        {"type": "http.response.body", "body": body[20:]},
    ]  # fmt: skip

    async def run() -> Submitted | None:
        path = "/api/v1/products/1/"
        asked: list[str] = []

        def headers(upstream: str) -> list[tuple[bytes, bytes]]:
            asked.append(upstream)
            return [(b"accept", b"*/*")]

        categories_path = "/api/v1/categories/"
        assert (
            shadowing.begin(categories, "GET", categories_path, None, client_send, headers) is None
        )
        assert shadowing.begin(detail, "GET", path, b"x" * 11, client_send, headers) is None
        tap = shadowing.begin(detail, "GET", path, None, client_send, headers)
        assert asked == ["catalog"]
        assert tap is not None
        for message in messages:
            await tap.send(message)
        result = tap.finish()
        await shadowing.engine.drain(30)
        await shadowing.close()
        return result

    assert asyncio.run(run()) is Submitted.QUEUED
    assert sent == messages
    assert shadowing.skipped_large == 1
    # the candidate renames name -> title; price is ignored by the route's rules
    assert dict(store.top_fields("product-detail")) == {"root['name']": 1, "root['title']": 1}


def test_oversized_responses_are_not_mirrored() -> None:
    engine = MirrorEngine(metrics=MirrorMetrics(CollectorRegistry()))
    shadowing = Shadowing(engine, ShadowSettings(max_response_bytes=5))

    class Route:
        pass

    route = Route()
    from strangler_proxy.shadow.engine import ShadowRoute

    shadowing._plans = {id(route): _Plan(ShadowRoute("r", "http://127.0.0.1:9"))}

    async def noop(message: Any) -> None:
        return None

    async def run() -> Submitted | None:
        tap = shadowing.begin(route, "GET", "/", None, noop, lambda upstream: [])
        assert tap is not None
        await tap.send({"type": "http.response.start", "status": 200, "headers": []})
        await tap.send({"type": "http.response.body", "body": b"0123456789"})
        result = tap.finish()
        await shadowing.close()
        return result

    assert asyncio.run(run()) is None
    assert engine.stats["queued"] == 0
    assert shadowing.skipped_large == 1


def test_routes_with_a_record_block_write_a_redacted_sample(
    tmp_path: Path, mitm_python: Path
) -> None:
    from types import SimpleNamespace

    from strangler_proxy.shadow._captures import read_capture

    route = SimpleNamespace(
        name="product-list", shadow=None, record=SimpleNamespace(sample_rate=0.5)
    )
    table = SimpleNamespace(upstreams={}, located_routes=lambda: [((), "catalog", route)])
    engine = MirrorEngine(metrics=MirrorMetrics(CollectorRegistry()))
    settings = ShadowSettings(record_file=tmp_path / "live.flows")
    values = iter([0.1, 0.9, 0.2])
    shadowing = Shadowing(engine, settings, sample=lambda: next(values))
    shadowing.sync(table)
    shadowing.start()  # in the proxy: each worker's lifespan startup

    async def noop(message: Any) -> None:
        return None

    async def run() -> int:
        recorded = 0
        for _ in range(3):
            headers = lambda upstream: [(b"authorization", b"Token s3cret")]  # noqa: E731
            tap = shadowing.begin(route, "GET", "/api/v1/products/", None, noop, headers)
            if tap is None:
                continue
            recorded += 1
            await tap.send({"type": "http.response.start", "status": 200, "headers": []})
            await tap.send({"type": "http.response.body", "body": b"[]"})
            assert tap.finish() is None  # recorded, not mirrored
        await shadowing.close()
        return recorded

    assert asyncio.run(run()) == 2
    exchanges = list(read_capture(tmp_path / "live.flows"))
    assert [e.request.header("authorization") for e in exchanges] == ["[REDACTED]"] * 2
    assert exchanges[0].response is not None and exchanges[0].response.body == b"[]"


def test_requests_sampled_out_are_not_copied_at_all() -> None:
    from strangler_proxy.shadow.engine import ShadowRoute

    engine = MirrorEngine(sample=lambda: 0.9, metrics=MirrorMetrics(CollectorRegistry()))
    shadowing = Shadowing(engine)
    route = object()
    shadow = ShadowRoute("r", "http://127.0.0.1:9", sample_rate=0.5)
    shadowing._plans = {id(route): _Plan(shadow)}

    def headers(upstream: str) -> list[tuple[bytes, bytes]]:
        raise AssertionError("a sampled-out request must not be copied")

    async def noop(message: Any) -> None:
        return None

    assert shadowing.begin(route, "GET", "/", None, noop, headers) is None
    assert shadowing.begin(route, "POST", "/", b"{}", noop, headers) is None
    assert (engine.stats["sampled_out"], engine.stats["skipped_unsafe"]) == (1, 1)


def test_a_shadow_upstream_with_replicas_lists_every_endpoint(tmp_path: Path) -> None:
    text = TABLE.format(primary="http://127.0.0.1:1", candidate="http://127.0.0.1:2").replace(
        'catalog: {url: "http://127.0.0.1:2"}',
        'catalog: {urls: ["http://127.0.0.1:2", "http://127.0.0.1:3/"]}',
    )
    text = text.replace("upstream: catalog\n", "upstream: catalog\n          calibrate: monolith\n")
    table = parse_table(text, tmp_path / "routes.yaml").table
    (route,) = shadow_routes(table).values()
    assert route.candidates == ("http://127.0.0.1:2", "http://127.0.0.1:3")
    assert route.second_primaries == ("http://127.0.0.1:1",)
    assert route.shadow_url == "http://127.0.0.1:2"
