"""Values the database holds but Python cannot: compared in their text form, never hiding a table.

``infinity`` timestamps, dates past 9999, NaN and infinite numbers: a row holding one
is a divergence (or a match when both sides agree) reported in the database's own
text, and the table's other divergences are still found. A real error names the
database it came from, and ``strangler reconcile`` exits 2 for it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.report import Report, Verdict
from reconciler.runner import ReconcileOptions, reconcile
from tests.reconciler.reconcile_tables import Pair, products

MakePair = Callable[[str], Pair]


def _run(pair: Pair, options: ReconcileOptions) -> Report:
    return reconcile(pair.mapping, pair.monolith_url, pair.service_url, options=options)


def _fields(report: Report) -> dict[object, dict[str, tuple[object, object]]]:
    table = report.table("products")
    return {d.key: {f.field: (f.monolith, f.service) for f in d.fields} for d in table.divergences}


@pytest.mark.parametrize("backend", ["pg", "sqlite"])
def test_infinity_on_one_side_is_a_divergence_in_text_and_hides_nothing(
    make_pair: MakePair, fast_options: ReconcileOptions, backend: str
) -> None:
    pair = make_pair(backend)
    pair.seed(30)
    pair.execute(
        "monolith", sa.text("UPDATE catalog_product SET updated_at = 'infinity' WHERE id = 3")
    )
    pair.execute("service", sa.text("UPDATE products SET created_at = '-infinity' WHERE id = 5"))
    pair.execute("service", products.update().where(products.c.id == 9).values(price_cents=1))

    report = _run(pair, fast_options)

    table = report.table("products")
    assert table.error is None and table.verdict is Verdict.DIVERGENT
    assert (table.differing, table.monolith_rows, table.service_rows) == (3, 30, 30)
    found = _fields(report)
    assert found[3]["updated_at"][0] == "infinity"
    assert found[5]["created_at"][1] == "-infinity"
    assert found[9] == {"price_cents": (9, 1)}
    assert report.table("categories").verdict is Verdict.CLEAN


@pytest.mark.parametrize("backend", ["pg", "sqlite"])
def test_infinity_on_both_sides_matches(
    make_pair: MakePair, fast_options: ReconcileOptions, backend: str
) -> None:
    pair = make_pair(backend)
    pair.seed(30)
    for side, table in (("monolith", "catalog_product"), ("service", "products")):
        pair.execute(side, sa.text(f"UPDATE {table} SET updated_at = 'infinity' WHERE id = 2"))
        pair.execute(side, sa.text(f"UPDATE {table} SET created_at = '-infinity' WHERE id = 3"))
    # A divergence in the same smallest bucket: keys 2 and 3 are fetched and diffed too.
    pair.execute("service", products.update().where(products.c.id == 4).values(price_cents=1))

    report = _run(pair, fast_options)

    assert list(_fields(report)) == [4]
    assert report.table("products").rows_fetched >= 6


def test_values_beyond_python_on_postgresql_are_reported_in_their_text(
    make_pair: MakePair, fast_options: ReconcileOptions
) -> None:
    pair = make_pair("pg")
    pair.seed(30)
    pair.execute("service", sa.text("ALTER TABLE products ALTER COLUMN price_cents TYPE numeric"))
    pair.execute("monolith", sa.text("UPDATE catalog_product SET price = 'NaN' WHERE id IN (4, 6)"))
    pair.execute("service", sa.text("UPDATE products SET price_cents = 'NaN' WHERE id = 6"))
    pair.execute(
        "monolith",
        sa.text("UPDATE catalog_product SET created_at = '10000-01-01 00:00:00+00' WHERE id = 7"),
    )
    pair.execute(
        "service",
        sa.text("UPDATE products SET updated_at = '0044-03-15 12:00:00+00 BC' WHERE id = 12"),
    )

    report = _run(pair, fast_options)

    table = report.table("products")
    assert table.error is None and table.differing == 3
    found = _fields(report)
    assert found[4] == {"price_cents": ("NaN", 4)}  # NaN on both sides (key 6) matches
    assert found[7]["created_at"][0] == "10000-01-01 00:00:00"
    assert found[12]["updated_at"][1] == "0044-03-15 12:00:00 BC"


def test_infinite_number_on_sqlite_is_reported_in_text(
    make_pair: MakePair, fast_options: ReconcileOptions
) -> None:
    pair = make_pair("sqlite")
    pair.seed(30)
    pair.execute("monolith", sa.text("UPDATE catalog_product SET price = 9e999 WHERE id = 4"))

    report = _run(pair, fast_options)

    assert _fields(report) == {4: {"price_cents": ("Infinity", 4)}}


def _unhashable_monolith_row(pair: Pair) -> None:
    """The monolith's updated_at as text, one row of it no timestamp at all."""
    pair.execute(
        "monolith", sa.text("ALTER TABLE catalog_product ALTER COLUMN updated_at TYPE text")
    )
    pair.execute("monolith", sa.text("UPDATE catalog_product SET updated_at = 'soon' WHERE id = 5"))


def test_an_error_names_the_database_it_came_from(
    make_pair: MakePair, fast_options: ReconcileOptions
) -> None:
    pair = make_pair("pg")
    pair.seed(30)
    _unhashable_monolith_row(pair)

    report = _run(pair, fast_options)

    error = report.table("products").error or ""
    monolith_db = pair.monolith_url.rsplit("/", 1)[1]
    service_db = pair.service_url.rsplit("/", 1)[1]
    assert error.startswith("monolith database ") and monolith_db in error
    assert service_db not in error and "soon" in error
    assert report.table("categories").verdict is Verdict.CLEAN


def _cli(monolith_url: str, service_url: str) -> list[str]:
    return [
        "catalog",
        "--monolith-url",
        monolith_url,
        "--service-url",
        service_url,
        "--grace",
        "0.05",
        "--no-progress",
        "--format",
        "json",
    ]


@pytest.mark.usefixtures("cli_env")
def test_reconcile_exits_2_for_a_table_error(make_pair: MakePair) -> None:
    pair = make_pair("pg")
    pair.seed(30)
    _unhashable_monolith_row(pair)

    result = CliRunner().invoke(app, _cli(pair.monolith_url, pair.service_url))

    assert result.exit_code == 2, result.output
    assert '"verdict": "error"' in result.stdout


@pytest.mark.usefixtures("cli_env")
def test_reconcile_exits_2_naming_an_unreachable_database(make_pair: MakePair) -> None:
    pair = make_pair("pg")
    unreachable = "postgresql://postgres@127.0.0.1:1/nosuch_service"

    result = CliRunner().invoke(app, _cli(pair.monolith_url, unreachable))

    assert result.exit_code == 2, result.output
    assert "service" in result.stderr and "127.0.0.1:1/nosuch_service" in result.stderr
