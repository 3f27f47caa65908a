"""Text and UUID keys: bucketed by key hash in one scan per side, same answers on both backends."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from migration_plans.core.mapping import ContextMapping
from reconciler.repair import apply_repair, plan_repair
from reconciler.report import Verdict
from reconciler.runner import ReconcileOptions, reconcile
from reconciler.schema import inspect_pair
from reconciler.sql import key_bucket_sql, key_parts
from tests.reconciler.reconcile_tables import engine, insert

OPTIONS = ReconcileOptions(grace_seconds=0.05, max_rechecks=2, levels=(16, 8), segment_size=1024)

MAPPING = ContextMapping.model_validate(
    {
        "context": "shop",
        "tables": [
            {
                "name": "coupons",
                "monolith_table": "shop_coupon",
                "service_table": "coupons",
                "key": {"monolith": "code", "service": "code"},
                "fields": [
                    {"monolith": "label", "service": "title"},
                    {
                        "monolith": "amount",
                        "service": "amount_cents",
                        "transform": "decimal_cents",
                    },
                ],
            }
        ],
    }
)


def _rows(keys: list[Any]) -> list[dict[str, Any]]:
    return [
        {"code": key, "label": f"coupon {n} | ☃", "amount": Decimal(n) / 4}
        for n, key in enumerate(keys)
    ]


def _load(urls: tuple[str, str], key_type: Any, keys: list[Any]) -> None:
    for url, side in zip(urls, ("monolith", "service"), strict=True):
        metadata = sa.MetaData()
        table = sa.Table(
            "shop_coupon" if side == "monolith" else "coupons",
            metadata,
            sa.Column("code", key_type, primary_key=True),
            sa.Column("label" if side == "monolith" else "title", sa.Text),
            sa.Column(
                "amount" if side == "monolith" else "amount_cents",
                sa.Numeric(10, 2) if side == "monolith" else sa.Integer,
            ),
        )
        metadata.create_all(engine(url))
        rows = _rows(keys)
        if side == "service":
            rows = [MAPPING.table("coupons").to_service(row) for row in rows]
        insert(engine(url), table, rows)


def _plant(urls: tuple[str, str], keys: list[Any]) -> dict[str, str]:
    with engine(urls[1]).begin() as conn:
        conn.execute(sa.text("DELETE FROM coupons WHERE code = :k"), {"k": keys[3]})
        conn.execute(sa.text("UPDATE coupons SET amount_cents = 1 WHERE code = :k"), {"k": keys[7]})
    with engine(urls[0]).begin() as conn:
        conn.execute(sa.text("DELETE FROM shop_coupon WHERE code = :k"), {"k": keys[11]})
    return {
        str(keys[3]): "missing_in_service",
        str(keys[7]): "differing",
        str(keys[11]): "missing_in_monolith",
    }


@pytest.fixture(params=["sqlite", "pg"])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/m.db", f"sqlite:///{tmp_path}/s.db"
    pg: tuple[str, str] = request.getfixturevalue("pg_urls")
    return pg


def test_varchar_keys_find_every_planted_divergence(urls: tuple[str, str]) -> None:
    keys = [f"CODE-{n:04d}|x" for n in range(200)]
    _load(urls, sa.String(32), keys)
    assert reconcile(MAPPING, *urls, options=OPTIONS).verdict is Verdict.CLEAN
    expected = _plant(urls, keys)

    report = reconcile(MAPPING, *urls, options=OPTIONS)

    table = report.table("coupons")
    assert {d.key: d.kind.value for d in table.divergences} == expected
    assert table.monolith_rows == table.service_rows == 199
    assert table.buckets > 1


def test_uuid_keys_on_postgresql(pg_urls: tuple[str, str]) -> None:
    keys = [uuid.UUID(int=n * 7919 + 1) for n in range(100)]
    _load(pg_urls, sa.Uuid(), keys)
    expected = _plant(pg_urls, keys)
    table = reconcile(MAPPING, *pg_urls, options=OPTIONS).table("coupons")
    assert {d.key: d.kind.value for d in table.divergences} == expected


def test_text_key_repair(tmp_path: Path) -> None:
    urls = (f"sqlite:///{tmp_path}/m.db", f"sqlite:///{tmp_path}/s.db")
    keys = [f"K{n}" for n in range(30)]
    _load(urls, sa.String(32), keys)
    _plant(urls, keys)
    report = reconcile(MAPPING, *urls, options=OPTIONS)
    plan = plan_repair(report, MAPPING, *urls, phase="dual_write")
    apply_repair(plan, MAPPING, *urls, audit_url=f"sqlite:///{tmp_path}/control.db")
    assert reconcile(MAPPING, *urls, options=OPTIONS).verdict is Verdict.CLEAN


COMPOSITE = ContextMapping.model_validate(
    {
        "context": "library",
        "tables": [
            {
                "name": "copies",
                "monolith_table": "library_copy",
                "service_table": "copies",
                "key": {
                    "monolith": ["branch_id", "isbn"],
                    "service": ["branch", "isbn"],
                    "type": ["integer", "text"],
                },
                "fields": [{"monolith": "shelf", "service": "shelf"}],
            }
        ],
    }
)


def test_composite_key_buckets_chain_the_parts_alike_on_both_sides(
    pg_urls: tuple[str, str],
) -> None:
    """hashtext mode buckets a composite key by its chained part hashes: the same bucket
    on both sides for the same key although the column types differ, and every planted
    divergence found (parts holding the separator and the escape included)."""
    _load_copies(pg_urls, analyze=False)
    pair = inspect_pair(COMPOSITE.table("copies"), *map(engine, pg_urls))
    assert pair.hash_mode == "hashtext" and pair.key_kind == "text"
    assert pair.bucket_part is None
    assert len(key_parts(pair, "monolith", "library_copy")) == 2
    _assert_buckets_alike_and_divergences_found(pair, pg_urls)


def test_a_nearly_unique_key_column_buckets_a_composite_key_alone(
    pg_urls: tuple[str, str],
) -> None:
    """With statistics saying one key column is nearly unique, its hash alone buckets
    the key (one hash per row, not a chain): still the same bucket on both sides, and
    every planted divergence found."""
    _load_copies(pg_urls, analyze=True)
    pair = inspect_pair(COMPOSITE.table("copies"), *map(engine, pg_urls))
    assert (pair.key_kind, pair.bucket_part) == ("text", 1)
    parts = key_parts(pair, "monolith", "library_copy")
    assert len(parts) == 1 and "isbn" in parts[0]
    bucket_expr = key_bucket_sql(pair, "service", "postgresql", 16).split(" AS b,")[0]
    assert '"branch"' not in bucket_expr and '"isbn"' in bucket_expr
    _assert_buckets_alike_and_divergences_found(pair, pg_urls)


def _load_copies(pg_urls: tuple[str, str], *, analyze: bool) -> None:
    """300 copies over 5 branches, ISBNs unique, some holding the separator or the
    escape; statistics only when ``analyze`` (autovacuum off, so none appear unasked)."""
    ddl = {
        "monolith": "CREATE TABLE library_copy (branch_id integer, isbn varchar(24), "
        "shelf text, PRIMARY KEY (branch_id, isbn)) WITH (autovacuum_enabled = false)",
        "service": "CREATE TABLE copies (branch bigint, isbn text, shelf text, "
        "PRIMARY KEY (branch, isbn)) WITH (autovacuum_enabled = false)",
    }
    table = {"monolith": "library_copy", "service": "copies"}
    keys = [
        (n % 5, f"978-{n}" + ("|b" if n % 3 == 0 else "\\" if n % 7 == 0 else ""))
        for n in range(300)
    ]
    for role, url in zip(("monolith", "service"), pg_urls, strict=True):
        with engine(url).begin() as conn:
            conn.execute(sa.text(ddl[role]))
            for branch, isbn in keys:
                conn.execute(
                    sa.text(f"INSERT INTO {table[role]} VALUES (:b, :i, 'S')"),
                    {"b": branch, "i": isbn},
                )
            if analyze:
                conn.execute(sa.text(f"ANALYZE {table[role]}"))


def _assert_buckets_alike_and_divergences_found(pair: Any, pg_urls: tuple[str, str]) -> None:
    buckets = []
    for role, url in zip(("monolith", "service"), pg_urls, strict=True):
        sql = key_bucket_sql(pair, role, "postgresql", 16)  # type: ignore[arg-type]
        assert "replace(" not in sql.split(" AS b,")[0]
        with engine(url).connect() as conn:
            buckets.append({int(b): (int(n), int(h)) for b, n, h in conn.exec_driver_sql(sql)})
    assert buckets[0] == buckets[1]
    assert len(buckets[0]) > 8
    with engine(pg_urls[1]).begin() as conn:
        conn.execute(sa.text("DELETE FROM copies WHERE branch = 0 AND isbn = '978-0|b'"))
        conn.execute(sa.text("UPDATE copies SET shelf = 'T' WHERE branch = 2 AND isbn = '978-7\\'"))
    found = reconcile(COMPOSITE, *pg_urls, options=OPTIONS).table("copies")
    assert {d.key: d.kind.value for d in found.divergences} == {
        "0|978-0\\|b": "missing_in_service",
        "2|978-7\\\\": "differing",
    }
