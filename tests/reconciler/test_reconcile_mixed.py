"""A SQLite monolith against a PostgreSQL service (portable md5 hashing), history on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from migration_plans.core.settings import mapping_for
from reconciler.history import clean_streak, last_runs_clean, recent_runs, record_run
from reconciler.report import Report, TableReport, Verdict
from reconciler.runner import ReconcileOptions, reconcile
from tests.reconciler.reconcile_tables import (
    catalog_product,
    engine,
    insert,
    monolith_metadata,
    product_row,
    products,
    service_metadata,
)

OPTIONS = ReconcileOptions(grace_seconds=0.05, max_rechecks=2, levels=(64, 8), segment_size=1024)


def test_sqlite_monolith_against_postgresql_service(
    tmp_path: Path, pg_urls: tuple[str, str]
) -> None:
    mapping = mapping_for("catalog")
    monolith_url, service_url = f"sqlite:///{tmp_path}/monolith.db", pg_urls[1]
    monolith_metadata.create_all(engine(monolith_url))
    service_metadata.create_all(engine(service_url))
    rows = [product_row(i) for i in range(1, 301)]
    insert(engine(monolith_url), catalog_product, rows)
    insert(
        engine(service_url),
        products,
        [mapping.table("products").to_service(row) for row in rows if row["id"] != 150],
    )

    report = reconcile(mapping, monolith_url, service_url, options=OPTIONS)

    assert report.hash_mode == "md5"
    table = report.table("products")
    assert [(d.key, d.kind.value) for d in table.divergences] == [(150, "missing_in_service")]


def test_history_on_a_postgresql_control_database(pg_urls: tuple[str, str]) -> None:
    control = pg_urls[0]
    for verdict in (Verdict.DIVERGENT, Verdict.CLEAN, Verdict.CLEAN):
        table = TableReport(name="products", monolith_table="m", service_table="s")
        table.verdict = verdict
        report = Report(
            run_id=f"run{len(recent_runs(url=control))}",
            context="catalog",
            started_at=datetime.now(UTC),
            tables=[table],
        )
        report.settle()
        record_run(report, url=control)
    assert [run.verdict for run in recent_runs("catalog", url=control)] == [
        "clean",
        "clean",
        "divergent",
    ]
    assert last_runs_clean("catalog", 2, url=control)
    assert not last_runs_clean("catalog", 3, url=control)
    assert clean_streak("catalog", table="products", url=control) == 2
