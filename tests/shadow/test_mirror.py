"""The mirror engine against real upstream processes (tests.shadow.shop_app)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest

from migration_plans.control.processes import free_port
from strangler_proxy.shadow._compare import CompareRules
from strangler_proxy.shadow._noise import NoiseLearner
from strangler_proxy.shadow.engine import MirrorEngine, MirrorMetrics, ShadowRoute, Submitted
from strangler_proxy.shadow.exchange import CapturedRequest, CapturedResponse
from strangler_proxy.shadow.store import RedisShadowStore

from .conftest import Shops

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


def metrics() -> MirrorMetrics:
    from prometheus_client import CollectorRegistry

    return MirrorMetrics(CollectorRegistry())


async def call_primary(
    client: httpx.AsyncClient, base: str, request: CapturedRequest
) -> CapturedResponse:
    response = await client.request(request.method, base + request.path, content=request.body)
    return CapturedResponse(response.status_code, tuple(response.headers.items()), response.content)


def get(path: str) -> CapturedRequest:
    return CapturedRequest(
        "GET", path, (("accept", "application/json"), ("authorization", "Token s3cret"))
    )


def routes(shops: Shops, **options: object) -> dict[str, ShadowRoute]:
    return {
        name: ShadowRoute(name=name, shadow_url=shops.candidate, context="catalog", **options)  # type: ignore[arg-type]
        for name in PATHS
    }


PATHS = {
    "product-list": "/api/v1/products/",
    "product-detail": "/api/v1/products/1/",
    "category-list": "/api/v1/categories/",
}


async def mirror_traffic(
    engine: MirrorEngine, shops: Shops, table: dict[str, ShadowRoute], rounds: int
) -> None:
    engine.start()
    async with httpx.AsyncClient() as client:
        for _ in range(rounds):
            for name, path in PATHS.items():
                request = get(path)
                primary = await call_primary(client, shops.primary, request)
                assert engine.submit(table[name], request, primary) is Submitted.QUEUED
    await engine.drain(30)
    await engine.close()


def test_planted_differences_are_found_with_their_paths_and_noise_is_learned(
    shops: Shops, store: RedisShadowStore
) -> None:
    noise = NoiseLearner()
    engine = MirrorEngine(store=store, noise=noise, concurrency=2, metrics=metrics())
    table = routes(shops, second_primary_url=shops.primary)
    asyncio.run(mirror_traffic(engine, shops, table, rounds=3))

    detail = store.counts(route="product-detail")
    assert (detail.compared, detail.mismatched) == (3, 3)
    assert dict(store.top_fields("product-detail")) == {"root['name']": 3, "root['title']": 3}

    categories = store.counts(route="category-list")
    assert categories.mismatched == 3
    assert {path for path, _ in store.top_fields("category-list")} == {
        "root['results'][0]['id']",
        "root['results'][0]['slug']",
        "root['results'][2]['id']",
        "root['results'][2]['slug']",
    }

    # the timestamp differs between two primary calls: learned, excluded, listed for the YAML
    listing = store.counts(route="product-list")
    assert (listing.compared, listing.matched) == (3, 3)
    assert noise.noisy_paths("product-list") == ("root['served_at']",)
    assert store.noise() == {"product-list": ("root['served_at']",)}
    assert store.match_rate(context="catalog") == (1 / 3, 9)

    sample = store.samples("product-detail")[0]
    assert "s3cret" not in json.dumps(sample)
    assert engine.stats["queued"] == 9 and engine.stats["mismatched"] == 6


def test_without_calibration_the_timestamp_is_a_mismatch_and_rules_fix_order(
    shops: Shops, store: RedisShadowStore
) -> None:
    engine = MirrorEngine(store=store, concurrency=2, metrics=metrics())
    table = routes(shops, rules=CompareRules(ignore_order=("root['results']",)))
    asyncio.run(mirror_traffic(engine, shops, table, rounds=1))
    assert store.top_fields("product-list") == [("root['served_at']", 1)]
    assert store.counts(route="category-list").matched == 1


def test_a_slow_shadow_fills_the_queue_then_copies_are_dropped_and_counted(
    shops: Shops, shop: Callable[..., str], store: RedisShadowStore
) -> None:
    slow = shop("candidate", delay=0.5)
    route = ShadowRoute(name="product-detail", shadow_url=slow, context="catalog")
    request = get("/api/v1/products/1/")
    primary = CapturedResponse(200, (("content-type", "application/json"),), b'{"id": 1}')

    async def burst() -> list[Submitted]:
        engine = MirrorEngine(
            store=store, queue_size=5, concurrency=1, timeout=10, metrics=metrics()
        )
        engine.start()
        # submit is synchronous: the whole burst runs without yielding to the workers
        results = [engine.submit(route, request, primary) for _ in range(50)]
        depth = engine.queue_depth
        await engine.drain(30)
        await engine.close()
        assert depth == 5
        return results

    results = asyncio.run(burst())
    assert results.count(Submitted.QUEUED) == 5
    assert results.count(Submitted.DROPPED) == 45
    counts = store.counts(route="product-detail")
    assert (counts.dropped, counts.compared) == (45, 5)


def test_a_dead_shadow_is_a_counted_shadow_error_and_never_raises(store: RedisShadowStore) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    route = ShadowRoute(name="product-detail", shadow_url=dead, context="catalog")
    primary = CapturedResponse(200, (), b"x")

    async def run() -> MirrorEngine:
        engine = MirrorEngine(store=store, concurrency=2, timeout=2, metrics=metrics())
        engine.start()
        for _ in range(4):
            engine.submit(route, get("/api/v1/products/1/"), primary)
        await engine.drain(30)
        await engine.close()
        return engine

    engine = asyncio.run(run())
    assert engine.stats["shadow_error"] == 4
    counts = store.counts(route="product-detail")
    assert (counts.shadow_errors, counts.compared) == (4, 0)
    assert "ClientConnectorError" in store.samples("product-detail")[0]["error"]


def test_writes_are_not_mirrored_unless_the_shadow_is_side_effect_free(
    shop: Callable[..., str], store: RedisShadowStore
) -> None:
    candidate = shop("candidate")
    write = CapturedRequest(
        "POST", "/api/v1/products/", (("content-type", "application/json"),), b'{"name": "Lamp"}'
    )
    created = CapturedResponse(
        201, (("content-type", "application/json"),), b'{"id": 99, "name": "Lamp"}'
    )
    guarded = ShadowRoute(name="product-create", shadow_url=candidate, context="catalog")
    declared = ShadowRoute(
        name="product-create", shadow_url=candidate, context="catalog", side_effect_free=True
    )

    async def run() -> tuple[Submitted, Submitted]:
        engine = MirrorEngine(store=store, metrics=metrics())
        engine.start()
        refused = engine.submit(guarded, write, created)
        await engine.drain(10)
        writes_before = httpx.get(candidate + "/_writes").json()["count"]
        assert writes_before == 0
        accepted = engine.submit(declared, write, created)
        await engine.drain(10)
        await engine.close()
        return refused, accepted

    refused, accepted = asyncio.run(run())
    assert (refused, accepted) == (Submitted.UNSAFE, Submitted.QUEUED)
    assert httpx.get(candidate + "/_writes").json()["count"] == 1
    assert store.counts(route="product-create").matched == 1


def test_sampling_rate_is_applied_per_route() -> None:
    values = iter([0.05, 0.5, 0.95, 0.09])
    engine = MirrorEngine(sample=lambda: next(values), metrics=metrics())
    route = ShadowRoute(name="r", shadow_url="http://127.0.0.1:9", sample_rate=0.1)
    primary = CapturedResponse(200)

    async def run() -> list[Submitted]:
        results = [engine.submit(route, get("/x"), primary) for _ in range(4)]
        await engine.close()
        return results

    assert asyncio.run(run()) == [
        Submitted.QUEUED,
        Submitted.SAMPLED_OUT,
        Submitted.SAMPLED_OUT,
        Submitted.QUEUED,
    ]


def test_outcome_totals_sum_routes_from_the_exposition() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from strangler_proxy.shadow.engine import outcome_totals

    registry = CollectorRegistry()
    metrics = MirrorMetrics(registry)
    metrics.count("detail", "queued")
    metrics.add("list", "queued", 2)
    metrics.count("detail", "matched")
    assert outcome_totals(generate_latest(registry).decode()) == {"queued": 3.0, "matched": 1.0}


def test_copies_take_the_shadow_endpoints_in_turn_past_a_dead_one(
    shops: Shops, store: RedisShadowStore
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    route = ShadowRoute(
        name="product-detail",
        shadow_url=dead,
        shadow_urls=(dead, shops.candidate),
        context="catalog",
    )
    primary = CapturedResponse(200, (), b"x")

    async def run() -> MirrorEngine:
        engine = MirrorEngine(store=store, concurrency=1, timeout=2, metrics=metrics())
        engine.start()
        for _ in range(4):
            engine.submit(route, get("/api/v1/products/1/"), primary)
        await engine.drain(30)
        await engine.close()
        return engine

    engine = asyncio.run(run())
    assert engine.stats["shadow_error"] == 0
    assert store.counts(route="product-detail").compared == 4
