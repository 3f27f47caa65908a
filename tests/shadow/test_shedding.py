"""The adaptive shedder: deterministic control from load samples, its settings, its counts."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from itertools import count, cycle, pairwise
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from migration_plans.control.evidence import StoreEvidence
from migration_plans.control.gates import GateResult
from migration_plans.core.plan import Gate
from strangler_proxy.routetable.loader import parse_table
from strangler_proxy.shadow._report import build_report, render_json, render_table
from strangler_proxy.shadow._shedding import LoopLoad, ShedController, ShedSettings
from strangler_proxy.shadow._store_sql import SqlShadowStore
from strangler_proxy.shadow.engine import MirrorEngine, MirrorMetrics
from strangler_proxy.shadow.settings import ShadowSettings
from strangler_proxy.shadow.shadowing import Shadowing
from strangler_proxy.shadow.store import COUNTERS, Counts, MemoryShadowStore, Outcome

SATURATED, IDLE, BETWEEN = 0.97, 0.1, 0.42


def feed(controller: ShedController, load: float, ticks: int) -> list[float]:
    return [controller.observe(load) for _ in range(ticks)]


def test_sustained_load_sheds_down_to_zero_and_headroom_brings_the_rate_back() -> None:
    controller = ShedController(ShedSettings())
    assert controller.level == 1.0
    down = feed(controller, SATURATED, 20)
    assert all(b <= a for a, b in pairwise(down))  # never goes up
    assert down[-1] == 0.0
    assert not any(controller.keep() for _ in range(100))  # nothing mirrored at zero
    up = feed(controller, IDLE, 60)
    assert all(b >= a for a, b in pairwise(up))
    assert up[-1] == 1.0


def test_the_dead_band_holds_the_rate_steady() -> None:
    controller = ShedController(ShedSettings(smoothing=1.0))
    feed(controller, SATURATED, 2)
    held = controller.level
    assert 0 < held < 1
    assert feed(controller, BETWEEN, 30) == [held] * 30  # neither up nor down: hysteresis
    calm = round(controller.settings.recover_after / controller.settings.interval)
    assert feed(controller, IDLE, calm - 1) == [held] * (calm - 1)  # not calm for long enough
    assert controller.observe(IDLE) > held


def test_one_request_at_a_time_is_never_shed_however_busy_the_loop() -> None:
    controller = ShedController(ShedSettings())
    assert {controller.observe(SATURATED, in_flight=1) for _ in range(50)} == {1.0}
    assert feed(controller, SATURATED, 10)[-1] < 1.0  # the same load with requests queueing


def test_a_single_spike_is_smoothed_away() -> None:
    controller = ShedController(ShedSettings())
    feed(controller, IDLE, 10)
    controller.observe(1.0)  # one busy interval among idle ones
    assert controller.level == 1.0


def test_between_zero_and_one_the_share_kept_follows_the_level() -> None:
    draws = count()
    controller = ShedController(ShedSettings(), sample=lambda: (next(draws) % 100) / 100)
    controller.level = 0.25
    assert sum(controller.keep() for _ in range(1000)) == 250


def test_thresholds_come_from_the_environment_and_bad_ones_are_refused() -> None:
    settings = ShadowSettings.from_env(
        {"STRANGLER_SHADOW_LOAD_HIGH": "0.9", "STRANGLER_SHADOW_LOAD_LOW": "0.5"}
    ).shedding
    assert (settings.adaptive, settings.load_high, settings.load_low) == (True, 0.9, 0.5)
    assert not ShadowSettings.from_env({"STRANGLER_SHADOW_ADAPTIVE": "0"}).shedding.adaptive
    with pytest.raises(ValueError, match=r"STRANGLER_SHADOW_LOAD_LOW=0\.9 must be below"):
        ShadowSettings.from_env({"STRANGLER_SHADOW_LOAD_LOW": "0.9"})
    with pytest.raises(ValueError, match="STRANGLER_SHADOW_ADAPTIVE"):
        ShadowSettings.from_env({"STRANGLER_SHADOW_ADAPTIVE": "maybe"})


TABLE = """
upstreams:
  monolith: {url: "http://127.0.0.1:9"}
  candidate: {url: "http://127.0.0.1:9"}
contexts:
  catalog:
    routes:
      - name: detail
        path: /detail
        methods: [GET]
        upstream: monolith
        shadow: {upstream: candidate, sample_rate: 0.5}
"""


def test_the_route_rate_stays_the_upper_bound_and_shed_copies_are_counted(
    tmp_path: Path,
) -> None:
    table = parse_table(TABLE, tmp_path / "routes.yaml").table
    (route,) = (found for _, _, found in table.located_routes())
    route_draws = cycle([0.2, 0.7])  # the route's 0.5: every other request admitted
    engine = MirrorEngine(
        metrics=MirrorMetrics(CollectorRegistry()), sample=lambda: next(route_draws)
    )
    shadowing = Shadowing(engine, ShadowSettings())
    shadowing.sync(table)

    async def requests(level: float) -> int:
        shadowing.shedder.level = level
        taps = [
            shadowing.begin(route, "GET", "/detail", None, _ignore, lambda _: ()) for _ in range(10)
        ]
        return sum(tap is not None for tap in taps)

    async def run() -> tuple[int, int]:
        try:
            return await requests(0.0), await requests(1.0)
        finally:
            await shadowing.close()

    assert asyncio.run(run()) == (0, 5)
    assert (engine.stats["shed"], engine.stats["sampled_out"]) == (5, 10)


async def _ignore(message: object) -> None:
    pass


def test_the_load_monitor_feeds_the_controller_from_the_loop() -> None:
    ran = (n * 0.05 for n in count())  # as if running all the time
    controller = ShedController(ShedSettings(interval=0.01))
    seen: list[float] = []
    monitor = LoopLoad(
        controller, 0.01, lambda c: seen.append(c.level), times=lambda: (next(ran), 0.0)
    )

    async def run() -> None:
        monitor.start()
        try:
            while controller.level > 0:
                await asyncio.sleep(0.01)
        finally:
            await monitor.stop()

    asyncio.run(asyncio.wait_for(run(), 30))
    assert seen[-1] == 0.0 and controller.load > 0.8


def test_shed_copies_reach_the_store_next_to_compared_ones() -> None:
    store = MemoryShadowStore()
    store.record_many(
        [Outcome.shed("detail", "catalog", 7), Outcome("detail", "matched", "catalog")]
    )
    counts = store.counts(context="catalog")
    assert (counts.compared, counts.shed) == (1, 7)
    assert "shed" in COUNTERS and Counts(shed=2).to_dict()["shed"] == 2


def test_the_shadow_gate_counts_compared_copies_and_shows_the_shed_ones_next_to_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/control.sqlite3"
    monkeypatch.setenv("STRANGLER_SHADOW_STORE_URL", url)
    matched = [Outcome("detail", "matched", "catalog") for _ in range(3)]
    SqlShadowStore.from_url(url).record_many([Outcome.shed("detail", "catalog", 40), *matched])
    plan = SimpleNamespace(context="catalog")
    observation = StoreEvidence().observe(plan, "shadow_match_rate")  # type: ignore[arg-type]
    assert (observation.value, observation.samples) == (1.0, 3)
    gate = Gate(metric="shadow_match_rate", op=">=", value=0.999, min_samples=1000)
    assert GateResult(gate, observation).describe() == (
        "FAIL: shadow_match_rate >= 0.999 over >= 1000 (now 1 over 3 compared; 40 shed, 0 dropped)"
    )


def test_an_existing_sql_store_gets_the_shed_counter(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.sqlite3"
    with sqlite3.connect(tmp_path / "old.sqlite3") as old:  # the table before issue 17
        old.execute(
            "CREATE TABLE shadow_counts (namespace VARCHAR(200), route VARCHAR(200), "
            "bucket INTEGER, compared INTEGER NOT NULL, matched INTEGER NOT NULL, "
            "mismatched INTEGER NOT NULL, dropped INTEGER NOT NULL, "
            "shadow_errors INTEGER NOT NULL, PRIMARY KEY (namespace, route, bucket))"
        )
    store = SqlShadowStore.from_url(url)
    store.record_many([Outcome.shed("detail", "catalog", 2), Outcome.dropped("detail", "catalog")])
    assert (store.counts().shed, store.counts().dropped) == (2, 1)


def test_the_shadow_report_shows_shed_copies_next_to_compared_ones() -> None:
    store = MemoryShadowStore()
    store.record_many(
        [Outcome.shed("detail", "catalog", 7), Outcome("detail", "matched", "catalog")]
    )
    report = build_report(store)
    header, row = (
        line for line in render_table(report).splitlines() if "compared" in line or "detail" in line
    )
    columns = [cell.strip() for cell in header.split("┃")][3:8]
    values = [cell.strip() for cell in row.split("│")][3:8]
    assert dict(zip(columns, values, strict=True)) == {
        "compared": "1",
        "matched": "1",
        "mismatched": "0",
        "dropped": "0",
        "shed": "7",
    }
    assert json.loads(render_json(report))["totals"]["shed"] == 7
