from __future__ import annotations

import json
import time

import pytest

from strangler_proxy.shadow.backend import match_rate
from strangler_proxy.shadow.store import (
    MemoryShadowStore,
    Outcome,
    RedisShadowStore,
    ShadowResults,
    parse_since,
)

from .helpers import outcome

pytestmark = pytest.mark.redis


@pytest.fixture(params=["redis", "memory"])
def any_store(request: pytest.FixtureRequest, store: RedisShadowStore) -> ShadowResults:
    return store if request.param == "redis" else MemoryShadowStore()


def test_counters_and_match_rate_per_route_and_context(any_store: ShadowResults) -> None:
    for _ in range(3):
        any_store.record(outcome("product-detail", {"name": "a"}, {"name": "a"}))
    any_store.record(outcome("product-detail", {"name": "a"}, {"title": "a"}))
    any_store.record(outcome("stock", {"n": 1}, {"n": 1}, context="inventory"))
    any_store.record(Outcome("product-detail", "shadow_error", "catalog", error="refused"))
    any_store.record(Outcome.dropped("product-detail", "catalog", count=5))

    counts = any_store.counts(route="product-detail")
    assert (counts.compared, counts.matched, counts.mismatched) == (4, 3, 1)
    assert (counts.dropped, counts.shadow_errors) == (5, 1)
    assert any_store.match_rate(route="product-detail") == (0.75, 4)  # type: ignore[attr-defined]
    assert any_store.match_rate(context="inventory") == (1.0, 1)  # type: ignore[attr-defined]
    assert any_store.match_rate(context="catalog") == (0.75, 4)  # type: ignore[attr-defined]
    assert any_store.match_rate(route="unknown") == (None, 0)  # type: ignore[attr-defined]
    assert any_store.routes() == {"product-detail": "catalog", "stock": "inventory"}


def test_top_fields_and_since_use_time_buckets(any_store: ShadowResults) -> None:
    now = time.time()
    old = now - 3 * 3600
    any_store.record(outcome("p", {"name": "a"}, {"title": "a"}, at=old))
    any_store.record(outcome("p", {"name": "a", "n": 1}, {"name": "a", "n": 2}, at=now))
    any_store.record(outcome("p", {"name": "a", "n": 1}, {"name": "a", "n": 3}, at=now))

    assert any_store.counts(route="p").compared == 3
    recent = any_store.counts(route="p", since=parse_since("1h"))
    assert (recent.compared, recent.mismatched) == (2, 2)
    assert any_store.top_fields("p", since=parse_since("1h")) == [("root['n']", 2)]
    assert dict(any_store.top_fields("p")) == {
        "root['n']": 2,
        "root['name']": 1,
        "root['title']": 1,
    }
    series = any_store.series("p")
    assert [c.compared for _, c in series] == [1, 2]
    assert series[0][0] < series[1][0]


def test_samples_are_redacted_capped_and_newest_first(
    redis_url: str, store: RedisShadowStore
) -> None:
    capped = RedisShadowStore(store.client, prefix=store.prefix, max_samples=3)
    for index in range(5):
        capped.record(
            outcome("p", {"i": index}, {"i": -index - 1}, path=f"/api/v1/products/{index}/")
        )
    samples = capped.samples("p")
    assert [s["request"]["path"] for s in samples] == [
        "/api/v1/products/4/",
        "/api/v1/products/3/",
        "/api/v1/products/2/",
    ]
    text = json.dumps(samples)
    assert "s3cret" not in text and "[REDACTED]" in text
    assert samples[0]["differences"][0]["path"] == "root['i']"


def test_matched_outcomes_keep_no_sample(any_store: ShadowResults) -> None:
    any_store.record(outcome("p", {"a": 1}, {"a": 1}))
    assert any_store.samples("p") == []


def test_noise_is_stored_per_route(any_store: ShadowResults) -> None:
    any_store.record(outcome("p", {"a": 1}, {"a": 1}))
    any_store.save_noise("p", ["root['served_at']"])
    any_store.save_noise("p", ["root['served_at']", "root['x']"])
    assert any_store.noise() == {"p": ("root['served_at']", "root['x']")}


def test_gate_function_reads_the_redis_store(redis_url: str, store: RedisShadowStore) -> None:
    for index in range(4):
        store.record(outcome("p", {"a": 1}, {"a": 1 if index else 2}))
    assert match_rate(context="catalog", redis_url=redis_url, prefix=store.prefix) == (0.75, 4)
    assert match_rate(
        context="catalog", since=time.time() + 3600, redis_url=redis_url, prefix=store.prefix
    ) == (None, 0)


def test_parse_since() -> None:
    assert parse_since(None) is None
    assert parse_since("30m", now=10_000) == 10_000 - 1800
    assert parse_since("2d", now=200_000) == 200_000 - 172_800
    assert parse_since("2026-11-26T00:00:00Z") == parse_since("2026-11-26T00:00:00+00:00")
    with pytest.raises(ValueError, match="--since"):
        parse_since("yesterday")
