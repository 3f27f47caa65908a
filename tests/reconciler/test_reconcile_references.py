"""`strangler reconcile references`: every referencing row's key exists in the owning context's
source of truth for its phase, checked across databases, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from migration_plans.core.phase import Phase
from migration_plans.core.plan import load_plans
from migration_plans.core.settings import plans_dir
from reconciler.cli import app
from reconciler.references import Located, ReferenceReport, check_references
from tests.reconciler.reconcile_tables import Pair

MakePair = Callable[[str], Pair]

MONOLITH_INVENTORY = (
    "CREATE TABLE inventory_warehouse (id BIGINT PRIMARY KEY)",
    "CREATE TABLE inventory_stockitem (id BIGINT PRIMARY KEY, product_id BIGINT NOT NULL,"
    " warehouse_id BIGINT NOT NULL)",
    "CREATE TABLE inventory_reservation (id BIGINT PRIMARY KEY, stock_item_id BIGINT NOT NULL)",
    "INSERT INTO inventory_warehouse (id) VALUES (1), (2)",
    "INSERT INTO inventory_stockitem (id, product_id, warehouse_id) VALUES"
    " (1, 1, 1), (2, 1, 2), (3, 2, 1), (4, 3, 2)",
    "INSERT INTO inventory_reservation (id, stock_item_id) VALUES (1, 2), (2, 4)",
)
SERVICE_INVENTORY = (
    "CREATE TABLE warehouses (id BIGINT PRIMARY KEY)",
    "CREATE TABLE stock_levels (id BIGINT PRIMARY KEY, product_id BIGINT NOT NULL,"
    " warehouse_id BIGINT NOT NULL)",
    "CREATE TABLE reservations (id BIGINT PRIMARY KEY, stock_level_id BIGINT NOT NULL)",
    "INSERT INTO warehouses (id) VALUES (1), (2)",
    "INSERT INTO stock_levels (id, product_id, warehouse_id) VALUES (1, 1, 1), (2, 5, 2)",
    "INSERT INTO reservations (id, stock_level_id) VALUES (1, 2)",
)


def _run(pair: Pair, side: str, *statements: str) -> None:
    for statement in statements:
        pair.execute(side, sa.text(statement))


def _stocked(make_pair: MakePair, backend: str) -> Pair:
    """Five products on both sides; inventory's tables in the monolith and in a service
    database (the catalog service's, here), every reference satisfied."""
    pair = make_pair(backend)
    pair.seed(5)
    _run(pair, "monolith", *MONOLITH_INVENTORY)
    _run(pair, "service", *SERVICE_INVENTORY)
    return pair


def _check(pair: Pair, catalog: Phase, inventory: Phase = Phase.SHARED) -> ReferenceReport:
    phases = {"catalog": catalog, "inventory": inventory}

    def locate(context: str) -> Located:
        return Located(phases[context], pair.monolith_url, pair.service_url)

    return check_references(load_plans(plans_dir()), "inventory", locate)


def _orphans(report: ReferenceReport) -> dict[str, list[tuple[int, int]]]:
    return {
        f"{check.table}.{check.column}": [(row.key, row.value) for row in check.rows]
        for check in report.checks
        if check.orphans
    }


@pytest.mark.parametrize("backend", ["sqlite", "pg"])
@pytest.mark.parametrize("catalog", [Phase.DUAL_WRITE, Phase.SPLIT])
def test_every_stock_rows_product_exists_clean(
    make_pair: MakePair, backend: str, catalog: Phase
) -> None:
    report = _check(_stocked(make_pair, backend), catalog)

    assert report.verdict == "clean", report.to_json()
    assert [(c.table, c.column, c.references, c.values_checked) for c in report.checks] == [
        ("stock_levels", "product_id", "catalog.products", 3),
        ("stock_levels", "warehouse_id", "inventory.warehouses", 2),
        ("reservations", "stock_level_id", "inventory.stock_levels", 2),
    ]


@pytest.mark.parametrize("backend", ["sqlite", "pg"])
def test_an_orphaned_stock_row_is_found_across_databases(make_pair: MakePair, backend: str) -> None:
    pair = _stocked(make_pair, backend)
    # catalog is split: its service holds the products; the monolith's copy no longer counts
    _run(pair, "service", "DELETE FROM products WHERE id = 2")
    _run(pair, "monolith", "INSERT INTO inventory_stockitem VALUES (9, 42, 1)")

    report = _check(pair, Phase.SPLIT)

    assert report.verdict == "divergent"
    assert _orphans(report) == {"stock_levels.product_id": [(3, 2), (9, 42)]}
    product = report.checks[0]
    assert (product.referencing_side, product.owning_side, product.orphans) == (
        "inventory monolith",
        "catalog service",
        2,
    )


@pytest.mark.parametrize("backend", ["sqlite", "pg"])
def test_orphans_in_the_monolith_and_in_a_split_service(make_pair: MakePair, backend: str) -> None:
    pair = _stocked(make_pair, backend)
    _run(pair, "monolith", "INSERT INTO inventory_reservation VALUES (7, 77)")
    _run(pair, "service", "INSERT INTO stock_levels VALUES (8, 99, 3)")

    in_monolith = _check(pair, Phase.DUAL_WRITE)
    both_split = _check(pair, Phase.SPLIT, Phase.SPLIT)

    assert _orphans(in_monolith) == {"reservations.stock_level_id": [(7, 77)]}
    assert _orphans(both_split) == {
        "stock_levels.product_id": [(8, 99)],
        "stock_levels.warehouse_id": [(8, 3)],
    }


def test_the_cli_reports_orphans_as_json_and_exits_1(
    make_pair: MakePair, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pair = _stocked(make_pair, "sqlite")
    for name, value in {
        "STRANGLER_MONOLITH_DATABASE_URL": pair.monolith_url,
        "CATALOG_DATABASE_URL": pair.service_url,
        "INVENTORY_DATABASE_URL": pair.service_url,
        "CATALOG_PHASE": "split",
        "INVENTORY_PHASE": "shared",
    }.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()

    clean = runner.invoke(app, ["references", "inventory", "--format", "json"])
    _run(pair, "monolith", "INSERT INTO inventory_stockitem VALUES (9, 42, 1)")
    found = runner.invoke(app, ["references", "inventory", "--format", "json"])
    table = runner.invoke(app, ["references", "inventory"])
    unknown = runner.invoke(app, ["references", "nowhere"])

    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.stdout)["verdict"] == "clean"
    assert found.exit_code == 1, found.output
    body = json.loads(found.stdout)
    assert (body["context"], body["kind"], body["verdict"]) == (
        "inventory",
        "references",
        "divergent",
    )
    assert body["checks"][0]["rows"] == [{"key": 9, "value": 42}]
    assert table.exit_code == 1 and "9 -> 42" in table.stdout
    assert unknown.exit_code == 2 and "unknown context 'nowhere'" in unknown.output
