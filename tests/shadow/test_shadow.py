"""The proxy-side glue: shadow blocks of a real route table, the response tap, hand-off."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from strangler_proxy.loader import parse_table
from strangler_proxy.mirror import MirrorEngine, MirrorMetrics, Submitted
from strangler_proxy.shadow import Shadowing, ShadowSettings, shadow_routes
from strangler_proxy.shadow_store import RedisShadowStore

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
        assert (
            shadowing.begin(categories, "GET", "/api/v1/categories/", [], None, client_send) is None
        )
        assert shadowing.begin(detail, "GET", path, [], b"x" * 11, client_send) is None
        tap = shadowing.begin(detail, "GET", path, [(b"accept", b"*/*")], None, client_send)
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
    from strangler_proxy.mirror import ShadowRoute

    shadowing._routes = {id(route): ShadowRoute("r", "http://127.0.0.1:9")}

    async def noop(message: Any) -> None:
        return None

    async def run() -> Submitted | None:
        tap = shadowing.begin(route, "GET", "/", [], None, noop)
        assert tap is not None
        await tap.send({"type": "http.response.start", "status": 200, "headers": []})
        await tap.send({"type": "http.response.body", "body": b"0123456789"})
        result = tap.finish()
        await shadowing.close()
        return result

    assert asyncio.run(run()) is None
    assert engine.stats["queued"] == 0
