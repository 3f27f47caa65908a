"""The payload read from real stores (SQLite control plane, in-memory shadow results)."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest

from migration_plans.control.dashboard.data import Sources
from migration_plans.control.history import Transition, record_transition
from migration_plans.core.control_db import control_engine
from migration_plans.core.live_phase import publish
from migration_plans.core.phase import Phase
from migration_plans.core.plan import load_plans
from migration_plans.core.replicas import Ack, ReplicaReporter, Role
from reconciler.history import record_run
from reconciler.runner import ReconcileOptions, reconcile
from strangler_proxy.app import StranglerProxy
from strangler_proxy.shadow.store import MemoryShadowStore
from tests.dashboard.conftest import AUTH, FixedSources, Place, client, dashboard_of, make_proxy
from tests.dashboard.seed import add_monolith_only_product, outcome, relayed_events
from tests.proxy.conftest import EchoUpstream

pytestmark = pytest.mark.anyio


def reconcile_catalog(place: Place) -> str:
    plan = load_plans(place.plans_dir)["catalog"]
    urls = place.databases
    report = reconcile(
        plan.mapping,
        urls.monolith,
        urls.catalog,
        options=ReconcileOptions(grace_seconds=0.0),
        phase=plan.phase.value,
    )
    record_run(report)
    return report.run_id


def planted(place: Place) -> tuple[StranglerProxy, MemoryShadowStore, str]:
    """A proxy over stores holding a transition, two reconcile runs, shadow results, relay events."""
    record_transition(
        control_engine(),
        Transition("catalog", "shared", "dual_write", actor="alice", forced=True, reason="demo"),
    )
    reconcile_catalog(place)
    add_monolith_only_product(place.databases.monolith, 99)
    run_id = reconcile_catalog(place)
    relayed_events(place.databases.catalog, "catalog", [12.0, 30.0, 45.0], dead=1)
    store = MemoryShadowStore()
    store.record(outcome("catalog-products-item-reads", "Cup", "Cup"))
    store.record(outcome("catalog-products-item-reads", "Espresso cup", "Espresso Cup"))
    proxy = make_proxy(place.routes)
    dashboard_of(proxy).sources = Sources(proxy.admin.view, shadow=lambda: store)
    return proxy, store, run_id


async def test_payload_reads_every_store(place: Place) -> None:
    proxy, _, run_id = planted(place)
    async with client(proxy) as http:
        payload = (await http.get("/_strangler/dashboard/data", headers=AUTH)).json()
    data = payload["data"]
    assert (
        set(payload["html"])
        == set(payload["hashes"])
        == {
            "contexts",
            "routes",
            "shadow",
            "reconciler",
            "dualwrite",
            "sagas",
        }
    )
    cards = {card["context"]: card for card in data["contexts"]}
    catalog = cards["catalog"]
    assert catalog["phase"] == "dual_write" and catalog["next"] == "split"
    assert catalog["last_transition"]["by"] == "alice" and catalog["last_transition"]["forced"]
    gates = {gate["metric"]: gate for gate in catalog["gates"]}
    assert (
        gates["reconcile_clean_runs"]["value"] == 0 and not gates["reconcile_clean_runs"]["passed"]
    )
    assert gates["reconcile_clean_runs"]["threshold"] == 3
    assert gates["dead_letters"]["value"] == 1 and not gates["dead_letters"]["passed"]
    assert cards["inventory"]["phase"] == "shared" and cards["inventory"]["last_transition"] is None

    routes = data["routes"]
    assert len(routes["hash"]) == 12 and routes["last_reload_error"] is None
    detail = next(r for r in routes["routes"] if r["name"] == "catalog-products-item-reads")
    assert detail["split"] == [["monolith", 100.0]] and detail["shadow"] == "catalog"

    shadow = data["shadow"]["routes"][0]
    assert shadow["route"] == "catalog-products-item-reads"
    assert shadow["counts"]["compared"] == 2 and shadow["counts"]["match_rate"] == 0.5
    assert shadow["top_fields"] == [["root['name']", 1]]
    sample = shadow["sample"]
    assert sample["method"] == "GET" and sample["target"] == "/api/v1/products/7/"
    assert '"name": "Espresso cup"' in sample["primary_body"]
    assert '"name": "Espresso Cup"' in sample["candidate_body"]

    tables = {t["table"]: t for t in data["reconciler"]["tables"]}
    assert [p[1] for p in tables["products"]["points"]] == [0, 1]
    assert [p[2] for p in tables["products"]["points"]] == ["clean", "divergent"]
    last = data["reconciler"]["last_runs"][0]
    assert last["run_id"] == run_id and last["verdict"] == "divergent"
    products = next(t for t in last["tables"] if t["name"] == "products")
    assert products["missing_in_service"] == 1

    relay = {status["context"]: status for status in data["dualwrite"]}
    service = relay["catalog"]["service"]
    assert service["applied"] == 3 and service["dead"] == 1
    assert service["lag_p50_ms"] == pytest.approx(30.0, abs=1)
    assert "error" not in relay["catalog"]


async def test_sections_render_the_payload(place: Place) -> None:
    proxy, _, run_id = planted(place)
    async with client(proxy) as http:
        page = (await http.get("/_strangler/dashboard", headers=AUTH)).text
        report = await http.get(f"/_strangler/dashboard/report/{run_id}", headers=AUTH)
        unknown = await http.get("/_strangler/dashboard/report/nope", headers=AUTH)
        bad = await http.get("/_strangler/dashboard/report/bad!id", headers=AUTH)
    assert 'data-context="catalog" data-phase="dual_write"' in page
    assert '<tr class="gate fail" data-metric="dead_letters"' in page
    assert 'class="actor">alice</b>' in page
    assert 'data-table="catalog.products" data-runs="2"' in page
    assert f'href="/_strangler/dashboard/report/{run_id}"' in page
    assert '<tr class="chg"><td class="l">  &quot;name&quot;: &quot;Espresso cup&quot;,' in page
    assert "<svg" in page and 'data-points="1"' in page
    assert report.status_code == 200 and "reconcile catalog: divergent" in report.text
    assert "'unsafe-inline'" in report.headers["content-security-policy"]
    assert unknown.status_code == bad.status_code == 404


async def test_a_store_that_is_down_only_blanks_its_section(place: Place) -> None:
    def broken() -> Any:
        raise ConnectionError("redis is down")

    proxy = make_proxy(place.routes)
    dashboard_of(proxy).sources = Sources(proxy.admin.view, shadow=broken)
    async with client(proxy) as http:
        payload = (await http.get("/_strangler/dashboard/data", headers=AUTH)).json()
    assert payload["data"]["shadow"] == {"error": "ConnectionError: redis is down"}
    assert "unavailable: ConnectionError: redis is down" in payload["html"]["shadow"]
    assert payload["data"]["contexts"] and payload["data"]["routes"]["routes"]


async def test_request_rates_come_from_the_proxy_counters(place: Place) -> None:
    now = [1000.0]
    upstream = await EchoUpstream("monolith").start()
    try:
        place.routes.write_text(
            place.routes.read_text().replace("http://127.0.0.1:9", upstream.url)
        )
        proxy = make_proxy(place.routes)
        sources = Sources(proxy.admin.view, shadow=lambda: None, clock=lambda: now[0])
        async with client(proxy) as http:
            first = sources.collect()["routes"]
            for _ in range(20):
                assert (await http.get("/api/v1/categories/")).status_code == 200
            now[0] += 10.0
            second = sources.collect()["routes"]
        await proxy.stop()
    finally:
        await upstream.stop()
    row = next(r for r in second["routes"] if r["name"] == "catalog-categories-reads")
    assert next(r for r in first["routes"] if r["name"] == row["name"])["rate"] is None
    assert row["rate"] == pytest.approx(2.0) and row["served"] == {"monolith": 2.0}


async def test_request_rates_show_from_the_first_poll(place: Place) -> None:
    """Issue #17, item 7: the first poll after the proxy started already has a rate."""
    now = [1000.0]
    upstream = await EchoUpstream("monolith").start()
    try:
        place.routes.write_text(
            place.routes.read_text().replace("http://127.0.0.1:9", upstream.url)
        )
        proxy = make_proxy(place.routes)
        assert dashboard_of(proxy).sources is not None  # built with the proxy, not at a poll
        sources = Sources(proxy.admin.view, shadow=lambda: None, clock=lambda: now[0])
        async with client(proxy) as http:
            for _ in range(30):
                assert (await http.get("/api/v1/categories/")).status_code == 200
            now[0] += 10.0
            first = sources.collect()["routes"]
        await proxy.stop()
    finally:
        await upstream.stop()
    row = next(r for r in first["routes"] if r["name"] == "catalog-categories-reads")
    assert row["rate"] == pytest.approx(3.0) and row["served"] == {"monolith": 3.0}


async def test_polls_share_one_collection_per_ttl(
    fixed_proxy: tuple[StranglerProxy, FixedSources],
) -> None:
    proxy, sources = fixed_proxy
    dashboard = dashboard_of(proxy)
    dashboard.ttl = 3600.0
    async with client(proxy) as http:
        for _ in range(5):
            assert (await http.get("/_strangler/dashboard/data", headers=AUTH)).status_code == 200
        assert sources.calls == 1
        dashboard.ttl = 0.0
        await http.get("/_strangler/dashboard/data", headers=AUTH)
    assert sources.calls == 2


async def test_forwarding_never_waits_for_a_slow_collection(place: Place) -> None:
    release, started = threading.Event(), threading.Event()

    class Slow(FixedSources):
        def collect(self) -> dict[str, Any]:
            started.set()
            release.wait(30)
            return super().collect()

    upstream = await EchoUpstream("monolith").start()
    try:
        place.routes.write_text(
            place.routes.read_text().replace("http://127.0.0.1:9", upstream.url)
        )
        proxy = make_proxy(place.routes)
        dashboard_of(proxy).sources = Slow()  # type: ignore[assignment]
        async with client(proxy) as http, anyio.create_task_group() as tasks:
            poll: list[int] = []

            async def dashboard_poll() -> None:
                response = await http.get("/_strangler/dashboard/data", headers=AUTH)
                poll.append(response.status_code)

            tasks.start_soon(dashboard_poll)
            await anyio.to_thread.run_sync(started.wait, 30)
            forwarded = await http.get("/api/v1/categories/")
            assert forwarded.status_code == 200 and not poll  # answered while collecting
            release.set()
        await proxy.stop()
        assert poll == [200]
    finally:
        release.set()
        await upstream.stop()


async def test_context_cards_list_the_replicas_and_the_published_epoch(place: Place) -> None:
    proxy, _, _ = planted(place)
    engine = control_engine()
    publish(engine, "catalog", Phase.DUAL_WRITE, fence_seconds=30.0)
    served = {"epoch": 0}
    reporter = ReplicaReporter(
        str(engine.url),
        Role.SERVICE,
        context="catalog",
        address="http://127.0.0.1:8101",
        snapshot=lambda: Ack(epochs={"catalog": served["epoch"]}),
        interval=30.0,
    ).start()
    try:
        async with client(proxy) as http:
            payload = (await http.get("/_strangler/dashboard/data", headers=AUTH)).json()
            page = (await http.get("/_strangler/dashboard", headers=AUTH)).text
    finally:
        reporter.stop()
    catalog = next(c for c in payload["data"]["contexts"] if c["context"] == "catalog")
    assert catalog["published"]["fenced"] and catalog["published"]["phase"] == "dual_write"
    [replica] = catalog["replicas"]
    assert replica["address"] == "http://127.0.0.1:8101" and replica["epochs"] == {"catalog": 0}
    assert '<tr class="replica behind"><td>service</td><td>http://127.0.0.1:8101</td>' in page
    assert "writes fenced" in page
