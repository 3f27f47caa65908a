"""The SQL results store (the embedded default) behaves like the Redis one, across processes."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest

from strangler_proxy.shadow._store_sql import SqlShadowStore
from strangler_proxy.shadow.backend import match_rate, open_store, store_url
from strangler_proxy.shadow.store import Outcome, RedisShadowStore, parse_since

from .helpers import outcome


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'control.sqlite3'}"


@pytest.fixture
def sql_store(db_url: str) -> SqlShadowStore:
    return SqlShadowStore.from_url(db_url, prefix="test")


def test_counters_and_match_rate_per_route_and_context(sql_store: SqlShadowStore) -> None:
    for _ in range(3):
        sql_store.record(outcome("product-detail", {"name": "a"}, {"name": "a"}))
    sql_store.record(outcome("product-detail", {"name": "a"}, {"title": "a"}))
    sql_store.record(outcome("stock", {"n": 1}, {"n": 1}, context="inventory"))
    sql_store.record(Outcome("product-detail", "shadow_error", "catalog", error="refused"))
    sql_store.record(Outcome.dropped("product-detail", "catalog", count=5))

    counts = sql_store.counts(route="product-detail")
    assert (counts.compared, counts.matched, counts.mismatched) == (4, 3, 1)
    assert (counts.dropped, counts.shadow_errors) == (5, 1)
    assert sql_store.match_rate(route="product-detail") == (0.75, 4)
    assert sql_store.match_rate(context="inventory") == (1.0, 1)
    assert sql_store.match_rate(context="catalog") == (0.75, 4)
    assert sql_store.match_rate(route="unknown") == (None, 0)
    assert sql_store.routes() == {"product-detail": "catalog", "stock": "inventory"}


def test_top_fields_and_since_use_time_buckets(sql_store: SqlShadowStore) -> None:
    now = time.time()
    old = now - 3 * 3600
    sql_store.record_many(
        [
            outcome("p", {"name": "a"}, {"title": "a"}, at=old),
            outcome("p", {"name": "a", "n": 1}, {"name": "a", "n": 2}, at=now),
            outcome("p", {"name": "a", "n": 1}, {"name": "a", "n": 3}, at=now),
        ]
    )
    assert sql_store.counts(route="p").compared == 3
    recent = sql_store.counts(route="p", since=parse_since("1h"))
    assert (recent.compared, recent.mismatched) == (2, 2)
    assert sql_store.top_fields("p", since=parse_since("1h")) == [("root['n']", 2)]
    assert dict(sql_store.top_fields("p")) == {
        "root['n']": 2,
        "root['name']": 1,
        "root['title']": 1,
    }
    series = sql_store.series("p")
    assert [c.compared for _, c in series] == [1, 2]
    assert series[0][0] < series[1][0]


def test_samples_are_redacted_capped_and_newest_first(db_url: str) -> None:
    capped = SqlShadowStore.from_url(db_url, prefix="capped", max_samples=3)
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
    assert capped.samples("p", since=time.time() + 60) == []


def test_matched_outcomes_keep_no_sample(sql_store: SqlShadowStore) -> None:
    sql_store.record(outcome("p", {"a": 1}, {"a": 1}))
    assert sql_store.samples("p") == []


def test_noise_is_stored_per_route(sql_store: SqlShadowStore) -> None:
    sql_store.record(outcome("p", {"a": 1}, {"a": 1}))
    sql_store.save_noise("p", ["root['served_at']"])
    sql_store.save_noise("p", ["root['served_at']", "root['x']"])
    assert sql_store.noise() == {"p": ("root['served_at']", "root['x']")}


def test_namespaces_are_separate_and_clear_removes_one(db_url: str) -> None:
    first = SqlShadowStore.from_url(db_url, prefix="one")
    second = SqlShadowStore.from_url(db_url, prefix="two")
    first.record(outcome("p", {"a": 1}, {"a": 2}))
    second.record(outcome("p", {"a": 1}, {"a": 1}))
    assert first.match_rate(route="p") == (0.0, 1)
    assert second.match_rate(route="p") == (1.0, 1)
    assert first.clear() > 0
    assert first.routes() == {} and second.routes() == {"p": "catalog"}


def _write_outcomes(url: str, count: int) -> None:
    store = SqlShadowStore.from_url(url, prefix="procs")
    for index in range(count):
        matched = {"a": 1}
        store.record_many([outcome("p", matched, matched if index % 10 else {"a": 2})])


def test_several_processes_write_one_database(db_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_outcomes, args=(db_url, 50)) for _ in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    counts = SqlShadowStore.from_url(db_url, prefix="procs").counts(route="p")
    assert (counts.compared, counts.matched, counts.mismatched) == (200, 180, 20)


def test_the_gate_function_reads_the_sql_store_by_default(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("STRANGLER_SHADOW_STORE_URL", "STRANGLER_SHADOW_STORE", "STRANGLER_SHADOW_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("STRANGLER_SHADOW_REDIS_URL", raising=False)
    monkeypatch.delenv("STRANGLER_REDIS_URL", raising=False)
    monkeypatch.setenv("STRANGLER_CONTROL_DB_URL", db_url)
    store = SqlShadowStore.from_url(db_url)
    for index in range(4):
        store.record(outcome("p", {"a": 1}, {"a": 1 if index else 2}))
    assert match_rate(context="catalog") == (0.75, 4)
    assert match_rate(context="catalog", since=time.time() + 3600) == (None, 0)


def test_store_selection_rule(db_url: str) -> None:
    assert store_url({"STRANGLER_CONTROL_DB_URL": db_url}) == db_url
    assert store_url({"STRANGLER_REDIS_URL": "redis://r:6379/1"}) == "redis://r:6379/1"
    assert (
        store_url({"STRANGLER_REDIS_URL": "redis://r/1", "STRANGLER_SHADOW_STORE": "sql"})
        == "sqlite:///var/control.sqlite3"
    )
    assert store_url({"STRANGLER_SHADOW_STORE": "redis"}).startswith("redis://")
    explicit = {"STRANGLER_SHADOW_STORE_URL": db_url, "STRANGLER_REDIS_URL": "redis://r/1"}
    assert store_url(explicit) == db_url
    with pytest.raises(ValueError, match="sql or redis"):
        store_url({"STRANGLER_SHADOW_STORE": "memcached"})
    assert isinstance(open_store(db_url, environ={}), SqlShadowStore)
    redis_store = open_store("redis://127.0.0.1:6379/0", environ={})
    assert isinstance(redis_store, RedisShadowStore)
    redis_store.client.close()
