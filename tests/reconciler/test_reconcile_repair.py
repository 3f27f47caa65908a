"""Repair writes the source of truth through the mapping; a second run is clean; all audited."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from reconciler.exceptions import RepairRefused
from reconciler.history import repairs_of
from reconciler.repair import apply_repair, plan_repair
from reconciler.report import Verdict
from reconciler.runner import ReconcileOptions, reconcile
from tests.reconciler.reconcile_tables import Pair, catalog_product, products

MakePair = Callable[[str], Pair]


def _diverge(pair: Pair) -> None:
    p, c = products, catalog_product
    pair.execute("service", p.delete().where(p.c.id.in_([3, 4])))
    pair.execute("service", p.update().where(p.c.id == 8).values(price_cents=1, status="archived"))
    pair.execute("monolith", c.delete().where(c.c.id == 20))


@pytest.mark.parametrize("backend", ["sqlite", "pg"])
def test_repair_in_dual_write_copies_the_monolith_and_audits_each_row(
    make_pair: MakePair, fast_options: ReconcileOptions, backend: str, tmp_path: Path
) -> None:
    pair = make_pair(backend)
    pair.seed(30)
    _diverge(pair)
    audit = f"sqlite:///{tmp_path}/control.db"
    report = reconcile(pair.mapping, pair.monolith_url, pair.service_url, options=fast_options)
    assert report.table("products").divergent == 4

    plan = plan_repair(
        report, pair.mapping, pair.monolith_url, pair.service_url, phase="dual_write"
    )
    assert {(a.key, a.action) for a in plan.actions} == {
        (3, "insert"),
        (4, "insert"),
        (8, "update"),
        (20, "delete"),
    }
    assert (
        apply_repair(plan, pair.mapping, pair.monolith_url, pair.service_url, audit_url=audit) == 4
    )

    again = reconcile(pair.mapping, pair.monolith_url, pair.service_url, options=fast_options)
    assert again.verdict is Verdict.CLEAN
    records = repairs_of(report.run_id, url=audit)
    assert sorted((r["row_key"], r["action"]) for r in records) == [
        ("20", "delete"),
        ("3", "insert"),
        ("4", "insert"),
        ("8", "update"),
    ]
    assert all(r["direction"] == "monolith->service" for r in records)

    replay = plan_repair(
        report, pair.mapping, pair.monolith_url, pair.service_url, phase="dual_write"
    )
    assert replay.actions == []  # idempotent: nothing left to write


def test_repair_in_split_writes_the_monolith(
    make_pair: MakePair, fast_options: ReconcileOptions, tmp_path: Path
) -> None:
    pair = make_pair("sqlite")
    pair.seed(10)
    pair.execute("service", products.update().where(products.c.id == 2).values(title="new title"))
    report = reconcile(pair.mapping, pair.monolith_url, pair.service_url, options=fast_options)
    plan = plan_repair(report, pair.mapping, pair.monolith_url, pair.service_url, phase="split")
    apply_repair(
        plan,
        pair.mapping,
        pair.monolith_url,
        pair.service_url,
        audit_url=f"sqlite:///{tmp_path}/c.db",
    )
    with pair.monolith.connect() as conn:
        name = conn.execute(sa.select(catalog_product.c.name).where(catalog_product.c.id == 2))
        assert name.scalar() == "new title"


def test_repair_is_refused_where_there_is_nothing_to_copy(
    make_pair: MakePair, fast_options: ReconcileOptions
) -> None:
    pair = make_pair("sqlite")
    report = reconcile(pair.mapping, pair.monolith_url, pair.service_url, options=fast_options)
    with pytest.raises(RepairRefused, match="nothing to repair"):
        plan_repair(report, pair.mapping, pair.monolith_url, pair.service_url, phase="shared")
    with pytest.raises(RepairRefused, match="reverse sync"):
        plan_repair(
            report,
            pair.mapping,
            pair.monolith_url,
            pair.service_url,
            phase="split",
            reverse_sync=False,
        )
