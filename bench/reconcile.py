"""Benchmark: strangler's reconcile against the single-scan limit, reladiff and a naive diff.

Two PostgreSQL databases get the catalog product table in its two shapes (monolith
``catalog_product``: decimal price, boolean is_active, name; service ``products``:
integer price_cents, status enum, title), ``--rows`` rows each, linked by the plan's
mapping, with ``--divergences`` planted differences (missing on either side, and
differing prices, statuses and titles). Prints JSON.

    .venv/bin/python bench/reconcile.py                 # 1,000,000 rows
    .venv/bin/python bench/reconcile.py --rows 100000   # quick

The ``composite`` cell does the same for a table with a composite (integer, text) key
(``library_copy`` / ``copies``, keyed by branch and ISBN, some ISBNs holding ``|``):
strangler's reconcile, which buckets such keys by the hash of their key text, against
the single-scan limit of the same tables, with planted divergences.

Measured: the single-scan limit (one mapped-hash aggregate per side, both sides at
once), strangler's reconcile (in-process), reladiff (pip ``reladiff``, if installed)
on the same pair, and fetch-everything + deepdiff on a sample, extrapolated. The limit
and strangler's run are timed in turns, ``--repeat`` rounds: the ratio is the median
of each round's run over its own scan, so load that comes and goes (a checkpoint after
the build, autovacuum) weighs on both alike.

First, before any divergence is planted, the ``incremental`` cell: after a clean full
run, ``--changed`` rows change in the monolith with capture on (events in its outbox)
and are applied to the service as the relay would, one of them wrongly; an
incremental run from the clean run's watermark must find exactly that key. Its time
is set against a full run of the same state (``full_vs_incremental``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

# Run as a script, bench/ comes first on sys.path and its dualwrite.py shadows the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dualwrite.capture import install_capture, set_capture
from migration_plans.core.mapping import ContextMapping
from migration_plans.core.outbox import outbox_table
from migration_plans.core.settings import mapping_for
from migration_plans.testing.databases import (
    create_database,
    drop_database,
    pg_admin_url,
    unique_name,
)
from reconciler.connections import engine_for
from reconciler.incremental import Baseline
from reconciler.runner import ReconcileOptions, reconcile
from reconciler.schema import inspect_pair
from reconciler.segment import compare_fetched, fetch_keys
from reconciler.sql import total_sql

MONOLITH_DDL = """
CREATE TABLE catalog_product (
    id bigint PRIMARY KEY, sku varchar(64) NOT NULL, name varchar(200) NOT NULL,
    description text, price numeric(10,2) NOT NULL, is_active boolean NOT NULL,
    category_id bigint, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)
"""
# One row generator, rendered in each shape: the service rows are the monolith rows mapped.
ROW_SQL = """
SELECT g AS id, 'SKU-' || g AS sku,
       'Product ' || g || CASE WHEN g %% 7 = 0 THEN ' ☕' ELSE '' END AS name,
       CASE WHEN g %% 5 = 0 THEN NULL ELSE 'Description of ' || md5(g::text) END AS description,
       (g %% 100000) / 100.0 AS price, g %% 3 <> 0 AS is_active, g %% 50 AS category_id,
       timestamptz '2026-01-01 00:00:00+00' + g * interval '1.000123 second' AS created_at,
       timestamptz '2026-06-01 00:00:00+00' + g * interval '1 second' AS updated_at
FROM generate_series(1, %(rows)s) AS g
"""
MONOLITH_FILL = f"INSERT INTO catalog_product {ROW_SQL}"
SERVICE_FILL = f"""
INSERT INTO products
SELECT id, sku, name, description, (price * 100)::int,
       CASE WHEN is_active THEN 'active' ELSE 'archived' END, category_id, created_at, updated_at
FROM ({ROW_SQL}) AS r
"""
SERVICE_DDL = """
CREATE TABLE products (
    id integer PRIMARY KEY, sku varchar(64) NOT NULL, title varchar(200) NOT NULL,
    description text, price_cents integer NOT NULL, status varchar(16) NOT NULL,
    category_id integer, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)
"""


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def build(monolith_url: str, service_url: str, rows: int) -> None:
    with psycopg.connect(monolith_url, autocommit=True) as conn:
        conn.execute(MONOLITH_DDL)
        conn.execute(MONOLITH_FILL, {"rows": rows})
    with psycopg.connect(service_url, autocommit=True) as conn:
        conn.execute(SERVICE_DDL)
        conn.execute(SERVICE_FILL, {"rows": rows})


def plant(monolith_url: str, service_url: str, rows: int, count: int) -> dict[int, str]:
    """Plant ``count`` divergences; returns key -> expected class."""
    keys = random.Random(42).sample(range(1, rows + 1), count)
    quarter = count // 4
    planted: dict[int, str] = {}
    with (
        psycopg.connect(monolith_url, autocommit=True) as mono,
        psycopg.connect(service_url, autocommit=True) as serv,
    ):
        for index, key in enumerate(keys):
            if index < quarter:
                serv.execute("DELETE FROM products WHERE id = %s", (key,))
                planted[key] = "missing_in_service"
            elif index < 2 * quarter:
                mono.execute("DELETE FROM catalog_product WHERE id = %s", (key,))
                planted[key] = "missing_in_monolith"
            elif index % 3 == 0:
                serv.execute(
                    "UPDATE products SET price_cents = price_cents + 1 WHERE id = %s", (key,)
                )
                planted[key] = "differing"
            elif index % 3 == 1:
                serv.execute(
                    "UPDATE products SET status = CASE status WHEN 'active' THEN 'archived' "
                    "ELSE 'active' END WHERE id = %s",
                    (key,),
                )
                planted[key] = "differing"
            else:
                serv.execute("UPDATE products SET title = title || '!' WHERE id = %s", (key,))
                planted[key] = "differing"
        mono.execute("VACUUM ANALYZE catalog_product")
        serv.execute("VACUUM ANALYZE products")
    return planted


def change_through_outbox(
    monolith_url: str, service_url: str, rows: int, count: int
) -> tuple[list[int], int]:
    """``count`` monolith price changes, captured into its outbox, relayed to the service by
    hand with one of them wrong; returns (changed keys, the wrong one). Capture off after."""
    monolith, service = engine_for(monolith_url), engine_for(service_url)
    catalog = mapping_for("catalog")  # only its products table exists here
    install_capture(monolith, [catalog.model_copy(update={"tables": (catalog.table("products"),)})])
    outbox_table.create(service, checkfirst=True)
    set_capture(monolith, "catalog", enabled=True)
    keys = sorted(random.Random(7).sample(range(1, rows + 1), count))
    wrong = keys[len(keys) // 2]
    with (
        psycopg.connect(monolith_url, autocommit=True) as mono,
        psycopg.connect(service_url, autocommit=True) as serv,
    ):
        mono.execute("UPDATE catalog_product SET price = price + 1 WHERE id = ANY(%s)", (keys,))
        serv.execute(
            "UPDATE products SET price_cents = price_cents + 100 + (id = %s)::int "
            "WHERE id = ANY(%s)",
            (wrong, keys),
        )
        mono.execute("UPDATE strangler_outbox SET status = 'applied', applied_at = now()")
    set_capture(monolith, "catalog", enabled=False)
    return keys, wrong


def incremental_cell(
    monolith_url: str, service_url: str, rows: int, changed: int, repeat: int
) -> dict[str, Any]:
    """A clean full run's watermark, ``changed`` keys through events (one wrong), then
    incremental runs against full runs of the same state."""
    mapping = mapping_for("catalog")
    options = ReconcileOptions(grace_seconds=0.0, max_rechecks=1)

    def run(baseline: Baseline | None = None) -> Any:
        return reconcile(
            mapping,
            monolith_url,
            service_url,
            tables=["products"],
            options=options,
            incremental=baseline is not None,
            baselines={"products": baseline} if baseline else None,
        ).table("products")

    clean = run()  # also creates the statistics, as a first run does
    assert clean.verdict == "clean", clean.divergences[:5]
    keys, wrong = change_through_outbox(monolith_url, service_url, rows, changed)
    since = Baseline(watermark=clean.watermark_to)
    incremental = [_timed(lambda: run(since)) for _ in range(repeat)]
    full = [_timed(run) for _ in range(repeat)]
    table = incremental[-1][1]
    inc_seconds = statistics.median(seconds for seconds, _ in incremental)
    full_seconds = statistics.median(seconds for seconds, _ in full)
    with psycopg.connect(service_url, autocommit=True) as serv:  # the later cells start equal
        serv.execute("UPDATE products SET price_cents = price_cents - 1 WHERE id = %s", (wrong,))
    return {
        "changed_through_events": len(keys),
        "planted": wrong,
        "found": [d.key for d in table.divergences] == [wrong],
        "keys_checked": table.keys_checked,
        "coverage": round(table.coverage, 6),
        "watermark_from": table.watermark_from,
        "watermark_to": table.watermark_to,
        "incremental_seconds": round(inc_seconds, 3),
        "full_seconds": round(full_seconds, 3),
        "full_found_planted": [d.key for d in full[-1][1].divergences] == [wrong],
        "full_vs_incremental": round(full_seconds / inc_seconds, 1),
    }


def single_scan(monolith_url: str, service_url: str) -> float:
    """Both sides' full mapped-hash aggregate at once (the floor for any checksum method)."""
    mapping = mapping_for("catalog").table("products")
    monolith, service = engine_for(monolith_url), engine_for(service_url)
    pair = inspect_pair(mapping, monolith, service)

    def scan(role: str) -> Any:
        engine = monolith if role == "monolith" else service
        with engine.connect() as conn:
            return conn.exec_driver_sql(total_sql(pair, role, "postgresql")).one()  # type: ignore[arg-type]

    with ThreadPoolExecutor(2) as pool:
        seconds, _ = _timed(lambda: list(pool.map(scan, ("monolith", "service"))))
    return seconds


def strangler(monolith_url: str, service_url: str) -> tuple[float, dict[int, str]]:
    mapping = mapping_for("catalog")
    options = ReconcileOptions(grace_seconds=0.0, max_rechecks=1)
    seconds, report = _timed(
        lambda: reconcile(mapping, monolith_url, service_url, tables=["products"], options=options)
    )
    found = {d.key: d.kind.value for d in report.table("products").divergences}
    return seconds, found


def reladiff_run(monolith_url: str, service_url: str) -> dict[str, Any]:
    try:
        from reladiff import connect_to_table, diff_tables
    except ImportError:
        return {"skipped": "reladiff is not installed (pip install 'reladiff[postgresql]')"}
    # reladiff compares columns by position and type; it cannot apply the mapping, so it
    # gets the columns whose values are the same on both sides (price/price_cents and
    # is_active/status are invisible to it: it refuses boolean vs varchar outright and
    # compares 79.19 with 7919 at reduced precision).
    left = connect_to_table(
        monolith_url,
        "catalog_product",
        "id",
        extra_columns=("sku", "name", "description", "category_id", "created_at", "updated_at"),
    )
    right = connect_to_table(
        service_url,
        "products",
        "id",
        extra_columns=("sku", "title", "description", "category_id", "created_at", "updated_at"),
    )
    seconds, diffs = _timed(lambda: list(diff_tables(left, right, threaded=True)))
    columns = "unmapped columns only (cannot compare price/price_cents, is_active/status)"
    keys = {int(row[0]) for _, row in diffs}
    return {"seconds": round(seconds, 3), "diff_rows": len(diffs), "keys": keys, "columns": columns}


def naive(monolith_url: str, service_url: str, rows: int, sample: int) -> dict[str, Any]:
    """Fetch every row of a key sample from both sides, map, deepdiff; extrapolate."""
    mapping = mapping_for("catalog").table("products")
    monolith, service = engine_for(monolith_url), engine_for(service_url)
    pair = inspect_pair(mapping, monolith, service)
    keys = list(range(1, sample + 1))
    seconds, _ = _timed(
        lambda: compare_fetched(mapping, *fetch_keys(pair, monolith, service, keys))
    )
    return {
        "sample_rows": sample,
        "sample_seconds": round(seconds, 3),
        "extrapolated_seconds": round(seconds * rows / sample, 1),
    }


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
                "fields": [
                    {"monolith": "shelf", "service": "shelf"},
                    {"monolith": "title", "service": "title"},
                    {"monolith": "price", "service": "price_cents", "transform": "decimal_cents"},
                    {"monolith": "acquired_at", "service": "acquired_at", "transform": "timestamp"},
                ],
            }
        ],
    }
)
COMPOSITE_ROW_SQL = """
SELECT {branch} AS branch_id,
       '978-' || lpad(g::text, 9, '0') || CASE WHEN g %% 11 = 0 THEN '|b' ELSE '' END AS isbn,
       'S' || (g %% 400) AS shelf, 'Title ' || g || CASE WHEN g %% 7 = 0 THEN ' ☕' ELSE '' END
           AS title,
       (g %% 100000) / 100.0 AS price,
       timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second' AS acquired_at
FROM generate_series(1, %(rows)s) AS g
"""
COMPOSITE_DDL = {
    "monolith": (
        """
CREATE TABLE library_copy (
    branch_id integer NOT NULL, isbn varchar(24) NOT NULL, shelf varchar(16) NOT NULL,
    title text NOT NULL, price numeric(10,2) NOT NULL, acquired_at timestamptz NOT NULL,
    PRIMARY KEY (branch_id, isbn))""",
        f"INSERT INTO library_copy {COMPOSITE_ROW_SQL}",
        "library_copy",
    ),
    "service": (
        """
CREATE TABLE copies (
    branch integer NOT NULL, isbn varchar(24) NOT NULL, shelf varchar(16) NOT NULL,
    title text NOT NULL, price_cents integer NOT NULL, acquired_at timestamptz NOT NULL,
    PRIMARY KEY (branch, isbn))""",
        "INSERT INTO copies SELECT branch_id, isbn, shelf, title, (price * 100)::int, "
        f"acquired_at FROM ({COMPOSITE_ROW_SQL}) AS r",
        "copies",
    ),
}
COMPOSITE_SHAPES = {
    # 50 branches: the first key column cannot narrow, rows are bucketed by key-text hash
    "key_hash_buckets": ("g %% 50", lambda g: g % 50),
    # 4 copies per branch id: PostgreSQL's statistics let ranges of it narrow, as for an id
    "first_column_ranges": ("g / 4", lambda g: g // 4),
}


def composite_plant(
    monolith_url: str, service_url: str, rows: int, count: int, branch_of: Callable[[int], int]
) -> dict[str, str]:
    """``count`` divergences in the composite-key tables; key text -> expected class."""
    key_text = COMPOSITE.table("copies").key.text_of
    planted: dict[str, str] = {}
    with (
        psycopg.connect(monolith_url, autocommit=True) as mono,
        psycopg.connect(service_url, autocommit=True) as serv,
    ):
        for index, g in enumerate(random.Random(19).sample(range(1, rows + 1), count)):
            branch = branch_of(g)
            isbn = f"978-{g:09d}" + ("|b" if g % 11 == 0 else "")
            where = {"b": branch, "i": isbn}
            if index % 3 == 0:
                serv.execute("DELETE FROM copies WHERE branch = %(b)s AND isbn = %(i)s", where)
                planted[key_text((branch, isbn))] = "missing_in_service"
            elif index % 3 == 1:
                mono.execute(
                    "DELETE FROM library_copy WHERE branch_id = %(b)s AND isbn = %(i)s", where
                )
                planted[key_text((branch, isbn))] = "missing_in_monolith"
            else:
                serv.execute(
                    "UPDATE copies SET shelf = shelf || '!' WHERE branch = %(b)s AND isbn = %(i)s",
                    where,
                )
                planted[key_text((branch, isbn))] = "differing"
        mono.execute("VACUUM ANALYZE library_copy")
        serv.execute("VACUUM ANALYZE copies")
    return planted


def composite_cell(
    monolith_url: str, service_url: str, rows: int, divergences: int, repeat: int, shape: str
) -> dict[str, Any]:
    """Composite (integer, text) key: strangler's reconcile against the single-scan limit."""
    branch_sql, branch_of = COMPOSITE_SHAPES[shape]
    started = time.perf_counter()
    for role, url in (("monolith", monolith_url), ("service", service_url)):
        ddl, fill, table = COMPOSITE_DDL[role]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(ddl)
            conn.execute(fill.replace("{branch}", branch_sql), {"rows": rows})
    build_seconds = time.perf_counter() - started
    with psycopg.connect(monolith_url, autocommit=True) as mono:
        mono.execute("VACUUM ANALYZE library_copy")
    with psycopg.connect(service_url, autocommit=True) as serv:
        serv.execute("VACUUM ANALYZE copies")
    monolith, service = engine_for(monolith_url), engine_for(service_url)
    options = ReconcileOptions(grace_seconds=0.0, max_rechecks=1)
    pair = inspect_pair(COMPOSITE.table("copies"), monolith, service)

    def scan(role: str) -> Any:
        engine = monolith if role == "monolith" else service
        with engine.connect() as conn:
            return conn.exec_driver_sql(total_sql(pair, role, "postgresql")).one()  # type: ignore[arg-type]

    def single() -> float:
        with ThreadPoolExecutor(2) as pool:
            seconds, _ = _timed(lambda: list(pool.map(scan, ("monolith", "service"))))
        return seconds

    def run() -> tuple[float, dict[str, str]]:
        seconds, report = _timed(
            lambda: reconcile(COMPOSITE, monolith_url, service_url, options=options)
        )
        return seconds, {str(d.key): d.kind.value for d in report.table("copies").divergences}

    def measure() -> tuple[float, float, float, float, dict[str, str]]:
        """Single scans and runs in turns (each run beside its own scan), medians."""
        first, _ = run()
        rounds = [(single(), run()) for _ in range(repeat)]
        return (
            statistics.median(limit for limit, _ in rounds),
            first,
            statistics.median(seconds for _, (seconds, _) in rounds),
            statistics.median(seconds / limit for limit, (seconds, _) in rounds),
            rounds[-1][1][1],
        )

    clean_scan, _, clean_ours, clean_ratio, clean_found = measure()
    planted = composite_plant(monolith_url, service_url, rows, divergences, branch_of)
    scan_seconds, first_seconds, ours, ratio, found = measure()
    return {
        "rows_per_side": rows,
        "key": "(integer, text)",
        "path": "ranges of the first key column"
        if pair.key_kind == "int"
        else "buckets by key-text hash",
        "build_seconds": round(build_seconds, 1),
        "clean": {
            "single_scan_limit_seconds": round(clean_scan, 3),
            "strangler_seconds": round(clean_ours, 3),
            "strangler_vs_single_scan": round(clean_ratio, 2),
            "false_divergences": len(clean_found),
        },
        "planted_divergences": len(planted),
        "single_scan_limit_seconds": round(scan_seconds, 3),
        "strangler_first_run_seconds": round(first_seconds, 3),
        "strangler_seconds": round(ours, 3),
        "strangler_vs_single_scan": round(ratio, 2),
        "found": sum(1 for key in planted if found.get(key) == planted[key]),
        "false_divergences": sum(1 for key in found if key not in planted),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--divergences", type=int, default=100)
    parser.add_argument("--changed", type=int, default=1000, help="rows for the incremental cell")
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="rounds of a single scan then a run; the medians are kept, the ratio is the "
        "median of each round's run over its scan",
    )
    parser.add_argument("--sample", type=int, default=5000, help="rows for the naive diff")
    parser.add_argument("--skip-reladiff", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument(
        "--only",
        choices=("all", "integer", "composite"),
        default="all",
        help="the integer-key cells (with incremental, naive, reladiff), the composite one, or all",
    )
    args = parser.parse_args()
    # The catalog mapping of the shipped template, unless a plans folder is configured.
    templates = Path(__file__).resolve().parent.parent / "migration_plans" / "templates"
    os.environ.setdefault("STRANGLER_PLANS_DIR", str(templates))

    admin = pg_admin_url()
    names = [unique_name("bench_monolith"), unique_name("bench_service")]
    monolith_url, service_url = (create_database(admin, name) for name in names)
    try:
        result: dict[str, Any] = {}
        if args.only in ("all", "integer"):
            result.update(integer_cells(monolith_url, service_url, args))
        if args.only in ("all", "composite"):
            result["composite"] = {
                shape: composite_cell(
                    monolith_url, service_url, args.rows, args.divergences, args.repeat, shape
                )
                for shape in COMPOSITE_SHAPES
            }
        print(json.dumps(result, indent=2))
    finally:
        if not args.keep:
            for name in names:
                drop_database(admin, name)


def integer_cells(monolith_url: str, service_url: str, args: argparse.Namespace) -> dict[str, Any]:
    """The integer-key product table: limit, strangler, naive, incremental and reladiff."""
    build_seconds, _ = _timed(lambda: build(monolith_url, service_url, args.rows))
    incremental = incremental_cell(monolith_url, service_url, args.rows, args.changed, args.repeat)
    planted = plant(monolith_url, service_url, args.rows, args.divergences)
    first_seconds, _ = strangler(monolith_url, service_url)
    rounds = [
        (single_scan(monolith_url, service_url), strangler(monolith_url, service_url))
        for _ in range(args.repeat)
    ]
    found = rounds[-1][1][1]
    scan = statistics.median(limit for limit, _ in rounds)
    ours = statistics.median(seconds for _, (seconds, _) in rounds)
    ratio = statistics.median(seconds / limit for limit, (seconds, _) in rounds)
    result: dict[str, Any] = {
        "rows_per_side": args.rows,
        "planted_divergences": len(planted),
        "build_seconds": round(build_seconds, 1),
        "single_scan_limit_seconds": round(scan, 3),
        "strangler_first_run_seconds": round(first_seconds, 3),
        "strangler_seconds": round(ours, 3),
        "strangler_vs_single_scan": round(ratio, 2),
        "found": sum(1 for key in planted if found.get(key) == planted[key]),
        "found_pct": round(
            100 * sum(1 for k in planted if found.get(k) == planted[k]) / len(planted), 1
        ),
        "false_divergences": sum(1 for key in found if key not in planted),
        "naive_deepdiff": naive(monolith_url, service_url, args.rows, args.sample),
        "incremental": incremental,
    }
    result["naive_vs_strangler"] = round(result["naive_deepdiff"]["extrapolated_seconds"] / ours, 1)
    if not args.skip_reladiff:
        peer = reladiff_run(monolith_url, service_url)
        if "keys" in peer:
            keys = peer.pop("keys")
            peer["found"] = len(keys & set(planted))
            peer["false_divergences"] = len(keys - set(planted))
            result["reladiff_vs_strangler"] = round(peer["seconds"] / ours, 2)
        result["reladiff"] = peer
    return result


if __name__ == "__main__":
    main()
