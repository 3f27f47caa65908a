"""Incremental runs: only keys with outbox events since the last clean run are compared."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from dualwrite.capture import install_capture, set_capture
from dualwrite.outbox import OutboxSink
from migration_plans.core.outbox import EventStatus, outbox_table
from reconciler.cli import app
from reconciler.history import load_watermarks, record_run
from reconciler.report import Report, RunKind, Verdict
from reconciler.runner import ReconcileOptions, reconcile
from tests.reconciler.reconcile_tables import Pair, catalog_product, products

MakePair = Callable[[str], Pair]
ROWS = 200
CHANGED = range(10, 20)
BAD_CHANGE = 15  # changed through the outbox path, but the service got another price
SERVICE_EDIT = 50  # edited in the service by raw SQL, with an event in the service outbox
UNCHANGED = 100  # edited in the service by raw SQL, no event anywhere


def captured_pair(make_pair: MakePair, backend: str) -> Pair:
    """Seeded, identical tables; monolith capture on; an outbox in the service."""
    pair = make_pair(backend)
    pair.seed(ROWS)
    install_capture(pair.monolith, [pair.mapping])
    set_capture(pair.monolith, "catalog", enabled=True)
    outbox_table.create(pair.service, checkfirst=True)
    return pair


def relayed_price_change(pair: Pair, keys: range, *, wrong: int | None = None) -> None:
    """Monolith UPDATEs (captured by the triggers), applied to the service like a relay would;
    the key ``wrong`` gets another price in the service."""
    for key in keys:
        pair.execute(
            "monolith",
            catalog_product.update().where(catalog_product.c.id == key).values(price=key + 1),
        )
        cents = 1 if key == wrong else (key + 1) * 100
        pair.execute(
            "service", products.update().where(products.c.id == key).values(price_cents=cents)
        )
    applied = outbox_table.update().values(status=EventStatus.APPLIED.value)
    pair.execute("monolith", applied)


def service_edit_with_event(pair: Pair, key: int) -> None:
    """A service row changed by raw SQL that also has a (relayed) event in the service outbox."""
    with Session(pair.service) as session, session.begin():
        session.execute(products.update().where(products.c.id == key).values(title="edited"))
        OutboxSink(context="catalog").record(
            session, table="products", operation="update", key=key, row={"id": key}
        )
    pair.execute("service", outbox_table.update().values(status=EventStatus.APPLIED.value))


def raw_service_edit(pair: Pair, key: int) -> None:
    pair.execute("service", products.update().where(products.c.id == key).values(title="raw"))


def run(pair: Pair, options: ReconcileOptions, *, incremental: bool, limit: int = 100) -> Report:
    report = reconcile(
        pair.mapping,
        pair.monolith_url,
        pair.service_url,
        tables=["products"],
        options=options,
        incremental=incremental,
    )
    record_run(report, limit=limit)
    return report


def keys_of(report: Report) -> list[int | str]:
    return [d.key for d in report.table("products").divergences]


@pytest.mark.parametrize("backend", ["sqlite", "pg"])
def test_incremental_checks_only_changed_keys(
    make_pair: MakePair, fast_options: ReconcileOptions, cli_env: str, backend: str
) -> None:
    pair = captured_pair(make_pair, backend)
    relayed_price_change(pair, range(1, 6))  # events before the clean run: not re-checked
    assert run(pair, fast_options, incremental=False).verdict is Verdict.CLEAN
    marks = load_watermarks("catalog")["products"]

    relayed_price_change(pair, CHANGED, wrong=BAD_CHANGE)
    service_edit_with_event(pair, SERVICE_EDIT)
    raw_service_edit(pair, UNCHANGED)
    report = run(pair, fast_options, incremental=True)

    table = report.table("products")
    assert (report.kind, table.kind, report.fallback) == ("incremental", "incremental", None)
    assert keys_of(report) == [BAD_CHANGE, SERVICE_EDIT]
    assert table.keys_checked == len(CHANGED) + 1
    assert table.coverage == pytest.approx((len(CHANGED) + 1) / ROWS)
    assert table.watermark_from == marks
    assert table.watermark_to["monolith"] > marks["monolith"]
    assert table.watermark_to["service"] > marks["service"]
    assert (table.monolith_rows, table.service_rows) == (ROWS, ROWS)
    assert keys_of(run(pair, fast_options, incremental=False)) == [
        BAD_CHANGE,
        SERVICE_EDIT,
        UNCHANGED,
    ]


@pytest.mark.parametrize("backend", ["sqlite", "pg"])
def test_a_divergent_run_does_not_advance_the_watermark(
    make_pair: MakePair, fast_options: ReconcileOptions, cli_env: str, backend: str
) -> None:
    pair = captured_pair(make_pair, backend)
    run(pair, fast_options, incremental=False)
    marks = load_watermarks("catalog")["products"]
    relayed_price_change(pair, CHANGED, wrong=BAD_CHANGE)

    assert run(pair, fast_options, incremental=True).verdict is Verdict.DIVERGENT
    assert load_watermarks("catalog")["products"] == marks
    relayed_price_change(pair, range(30, 31))
    again = run(pair, fast_options, incremental=True)
    assert keys_of(again) == [BAD_CHANGE]
    assert again.table("products").keys_checked == len(CHANGED) + 1

    pair.execute(
        "service",
        products.update().where(products.c.id == BAD_CHANGE).values(price_cents=1600),
    )
    clean = run(pair, fast_options, incremental=True)
    assert clean.verdict is Verdict.CLEAN
    assert load_watermarks("catalog")["products"] == clean.table("products").watermark_to
    assert run(pair, fast_options, incremental=True).table("products").keys_checked == 0


@pytest.mark.parametrize("backend", ["sqlite", "pg"])
def test_keys_a_full_run_left_divergent_stay_in_the_work_list(
    make_pair: MakePair, fast_options: ReconcileOptions, cli_env: str, backend: str
) -> None:
    pair = captured_pair(make_pair, backend)
    run(pair, fast_options, incremental=False)
    raw_service_edit(pair, UNCHANGED)
    assert keys_of(run(pair, fast_options, incremental=False)) == [UNCHANGED]

    carried = run(pair, fast_options, incremental=True)
    assert keys_of(carried) == [UNCHANGED]
    assert carried.table("products").keys_checked == 1

    run(pair, fast_options, incremental=False, limit=0)  # its keys are not all stored
    unknown = run(pair, fast_options, incremental=True)
    assert unknown.kind is RunKind.FULL
    assert unknown.fallback == "products: its last run found more divergent keys than it stored"
    assert keys_of(unknown) == [UNCHANGED]


@pytest.mark.parametrize("backend", ["sqlite", "pg"])
def test_without_a_clean_run_incremental_falls_back_to_full(
    make_pair: MakePair, fast_options: ReconcileOptions, cli_env: str, backend: str
) -> None:
    pair = captured_pair(make_pair, backend)
    raw_service_edit(pair, UNCHANGED)

    report = run(pair, fast_options, incremental=True)
    table = report.table("products")
    assert (report.kind, table.kind) == (RunKind.FULL, RunKind.FULL)
    assert report.fallback == "products: no clean run recorded yet"
    assert keys_of(report) == [UNCHANGED]
    assert (table.keys_checked, table.coverage) == (ROWS, 1.0)
    assert "products" not in load_watermarks("catalog")  # a divergent run sets none


def test_cli_incremental_json_table_and_repair(
    make_pair: MakePair, cli_env: str, tmp_path: Path
) -> None:
    pair = captured_pair(make_pair, "sqlite")
    runner = CliRunner()
    args = [
        "catalog",
        "--table",
        "products",
        "--monolith-url",
        pair.monolith_url,
        "--service-url",
        pair.service_url,
        "--grace",
        "0.05",
        "--no-progress",
    ]
    first = runner.invoke(app, [*args, "--incremental", "--format", "json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["fallback"] == "products: no clean run recorded yet"
    relayed_price_change(pair, CHANGED, wrong=BAD_CHANGE)
    raw_service_edit(pair, UNCHANGED)

    found = runner.invoke(app, [*args, "--incremental", "--format", "json"])
    assert found.exit_code == 1, found.output
    report = json.loads(found.stdout)
    table = report["tables"][0]
    assert (report["kind"], table["kind"], table["keys_checked"]) == (
        "incremental",
        "incremental",
        len(CHANGED),
    )
    assert [d["key"] for d in table["divergences"]] == [BAD_CHANGE]
    assert set(table["watermark_from"]) == set(table["watermark_to"]) == {"monolith", "service"}
    assert table["coverage"] == pytest.approx(len(CHANGED) / ROWS)

    shown = runner.invoke(app, [*args, "--incremental"])
    assert "(incremental)" in shown.stdout and "keys checked (5.00% of rows)" in shown.stdout
    repaired = runner.invoke(app, [*args, "--incremental", "--repair"])
    assert repaired.exit_code == 1 and "wrote 1 rows" in repaired.output, repaired.output
    assert runner.invoke(app, [*args, "--incremental"]).exit_code == 0
    full = runner.invoke(app, [*args, "--format", "json"])
    assert [d["key"] for d in json.loads(full.stdout)["tables"][0]["divergences"]] == [UNCHANGED]
