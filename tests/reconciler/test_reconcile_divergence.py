"""Planted divergences of every class are found exactly, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest

from reconciler.diff import DivergenceKind
from reconciler.exceptions import UnknownTable
from reconciler.report import Verdict
from reconciler.runner import ReconcileOptions, reconcile
from tests.reconciler.reconcile_tables import EPOCH, Pair, catalog_product, product_row, products

BACKENDS = ["sqlite", "pg"]

MakePair = Callable[[str], Pair]


def _run(pair: Pair, options: ReconcileOptions, tables: list[str] | None = None):  # type: ignore[no-untyped-def]
    return reconcile(
        pair.mapping, pair.monolith_url, pair.service_url, options=options, tables=tables
    )


def _plant(pair: Pair) -> dict[int, tuple[str, set[str]]]:
    """Every class of divergence; returns key -> (kind, fields) expected."""
    p, c = products, catalog_product
    pair.execute("service", p.delete().where(p.c.id.in_([5, 1500])))
    pair.execute("monolith", c.delete().where(c.c.id.in_([77, 2048])))
    pair.execute("service", p.update().where(p.c.id == 10).values(price_cents=1001))
    pair.execute("monolith", c.update().where(c.c.id == 11).values(is_active=False))
    pair.execute("service", p.update().where(p.c.id == 14).values(title="Renamed ☃"))
    pair.execute("service", p.update().where(p.c.id == 16).values(description=None))
    pair.execute(
        "service",
        p.update().where(p.c.id == 999).values(updated_at=EPOCH + timedelta(microseconds=1)),
    )
    pair.execute("monolith", c.update().where(c.c.id == 1024).values(sku="X", category_id=None))
    return {
        5: ("missing_in_service", set()),
        1500: ("missing_in_service", set()),
        77: ("missing_in_monolith", set()),
        2048: ("missing_in_monolith", set()),
        10: ("differing", {"price_cents"}),
        11: ("differing", {"status"}),
        14: ("differing", {"title"}),
        16: ("differing", {"description"}),
        999: ("differing", {"updated_at"}),
        1024: ("differing", {"sku", "category_id"}),
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_planted_divergences_are_found_exactly(
    make_pair: MakePair, fast_options: ReconcileOptions, backend: str
) -> None:
    pair = make_pair(backend)
    pair.seed(2100)
    assert _run(pair, fast_options).verdict is Verdict.CLEAN
    expected = _plant(pair)

    report = _run(pair, fast_options)

    table = report.table("products")
    found = {d.key: (d.kind.value, {f.field for f in d.fields}) for d in table.divergences}
    assert found == expected
    assert (table.missing_in_service, table.missing_in_monolith, table.differing) == (2, 2, 6)
    assert table.monolith_rows == 2098 and table.service_rows == 2098
    assert table.segments == 3  # 1024-key segments: the divergences span all of them
    assert report.table("categories").verdict is Verdict.CLEAN
    assert report.verdict is Verdict.DIVERGENT
    price = next(d for d in table.divergences if d.key == 10).fields[0]
    assert (price.monolith, price.service) == (10, 1001)


@pytest.mark.parametrize("backend", BACKENDS)
def test_decimal_price_equals_integer_cents_only_when_it_should(
    make_pair: MakePair, fast_options: ReconcileOptions, backend: str
) -> None:
    pair = make_pair(backend)
    pair.seed(3)
    pair.execute("monolith", catalog_product.update().values(price=Decimal("79.19")))
    pair.execute("service", products.update().values(price_cents=7919))
    assert _run(pair, fast_options, ["products"]).verdict is Verdict.CLEAN

    pair.execute("service", products.update().where(products.c.id == 2).values(price_cents=7900))
    table = _run(pair, fast_options, ["products"]).table("products")
    assert [(d.key, d.fields[0].monolith, d.fields[0].service) for d in table.divergences] == [
        (2, 7919, 7900)
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_nulls_and_unicode(
    make_pair: MakePair, fast_options: ReconcileOptions, backend: str
) -> None:
    pair = make_pair(backend)
    pair.seed(40)  # every 5th description is NULL, every 7th name has non-ASCII text
    assert _run(pair, fast_options).verdict is Verdict.CLEAN
    pair.execute("service", products.update().where(products.c.id == 5).values(description=""))
    pair.execute(
        "service", products.update().where(products.c.id == 7).values(title="Product 7 ☕ e")
    )
    pair.execute(
        "monolith",
        catalog_product.update().where(catalog_product.c.id == 3).values(description="~"),
    )
    table = _run(pair, fast_options).table("products")
    assert {d.key: d.fields[0].field for d in table.divergences} == {
        3: "description",
        5: "description",
        7: "title",
    }
    null_vs_empty = next(d for d in table.divergences if d.key == 5).fields[0]
    assert (null_vs_empty.monolith, null_vs_empty.service) == (None, "")


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_tables(make_pair: MakePair, fast_options: ReconcileOptions, backend: str) -> None:
    pair = make_pair(backend)
    report = _run(pair, fast_options)
    assert report.verdict is Verdict.CLEAN
    assert all(t.monolith_rows == 0 and t.segments == 0 for t in report.tables)

    pair.seed(0)
    from tests.reconciler.reconcile_tables import insert

    insert(pair.monolith, catalog_product, [product_row(i) for i in range(1, 6)])
    table = _run(pair, fast_options).table("products")
    assert [d.kind for d in table.divergences] == [DivergenceKind.MISSING_IN_SERVICE] * 5
    assert any("backfill" in hint for hint in table.hints)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_scale_bug_gets_a_root_cause_hint(
    make_pair: MakePair, fast_options: ReconcileOptions, backend: str
) -> None:
    pair = make_pair(backend)
    pair.seed(30)
    pair.execute(
        "service",
        products.update()
        .where(products.c.id <= 10)
        .values(price_cents=products.c.price_cents * 100),
    )
    table = _run(pair, fast_options).table("products")
    assert table.differing == 10
    assert any("x100" in hint and "price_cents" in hint for hint in table.hints)


def test_unknown_table_is_refused(make_pair: MakePair, fast_options: ReconcileOptions) -> None:
    pair = make_pair("sqlite")
    with pytest.raises(UnknownTable, match=r"no table .prodcts.*known: categories, products"):
        _run(pair, fast_options, ["prodcts"])
