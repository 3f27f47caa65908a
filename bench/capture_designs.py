"""Capture designs under a bulk UPDATE (not a test): prints JSON figures.

What one admin ``UPDATE catalog_product SET price = price + 1`` of ``--rows`` rows
(default 100,000) costs with the products' capture trigger function swapped for each
design, on the bulk benchmark's own pair (``bench/dualwrite.py``). The peer is the same
UPDATE with capture off, same run; every figure is the median of ``--repeat`` runs, with
the table vacuumed and the outboxes emptied between runs (so the baseline is an UPDATE
of an unbloated table, faster than in ``bench/dualwrite.py --only bulk``).

- ``current``: the shipped trigger (an outbox row and its JSON image per changed row).
- ``key_only_paired``: an outbox row per changed row without its image; old and new rows
  still paired (a moved key, an unchanged row).
- ``key_only_unpaired``: an outbox row per new row, nothing paired.
- ``row_per_statement_images``: one row per statement holding every new row's image
  (incomplete: a key the UPDATE moved away gets no delete).
- ``row_per_statement_paired``: one row per statement holding what the shipped trigger
  captures, pairs and all: each changed row's image, each moved-away key.
- ``row_per_statement_unpaired``: one row per statement holding every new row's image
  and every old row's key (complete without pairing; unchanged rows are not skipped).
- ``row_per_statement_keys``: one row per statement holding the new and the old rows'
  keys (complete for a relay that reads each key's image when it applies).

These are probes of the write side: no relay reads what they write. They measure how
far each design is from the goal ``capture_overhead <= 1.5`` of the bulk cell. One
figure of the read side: ``expand_paired_s``, what turning one ``row_per_statement_paired``
row back into an outbox row per event costs the relay (a design that keeps the relay's
per-event outbox pays it on the relay's side, on top of its drain). And ``read_images``:
what a relay pass's read of the row images costs per event from today's outbox rows,
against reading them by key from the monolith's table, as a relay of
``row_per_statement_keys`` would.

    .venv/bin/python bench/capture_designs.py [--rows 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.dualwrite import BULK_UPDATE, _timed, make_pair, seed  # noqa: E402
from migration_plans.testing.databases import drop_database, libpq_url, pg_admin_url  # noqa: E402

FUNCTION = "strangler_capture_catalog_product_fn"
PROBE_TABLE = "strangler_capture_probe"

_BODY = """
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger
LANGUAGE plpgsql SET work_mem = '64MB' SET jit = off AS $probe$
DECLARE
    seq regclass := pg_get_serial_sequence('strangler_outbox', 'id')::regclass;
BEGIN
    IF TG_OP <> 'UPDATE' OR NOT EXISTS (
        SELECT 1 FROM strangler_capture WHERE context = 'catalog' AND enabled
    ) THEN
        RETURN NULL;
    END IF;
    {capture}
    PERFORM pg_notify('strangler_outbox', 'catalog');
    RETURN NULL;
END
$probe$
"""

_OUTBOX_ROWS = """
    INSERT INTO strangler_outbox (id, event_id, context, aggregate_type, aggregate_key,
        operation, payload, origin, request_id, status, attempts, created_at)
    SELECT n, 'm-' || n, 'catalog', 'products', key, 'update', NULL, 'monolith', 'probe',
           'pending', 0, clock_timestamp()
    FROM ({keys}) AS changed;
"""

DESIGNS = {
    "key_only_paired": _OUTBOX_ROWS.format(
        keys="SELECT nextval(seq) AS n, CAST(coalesce(r.id, o.id) AS TEXT) AS key "
        "FROM strangler_old o FULL JOIN strangler_new r ON o.id = r.id "
        "WHERE r.id IS NULL OR o.id IS NULL OR NOT (o *= r)"
    ),
    "key_only_unpaired": _OUTBOX_ROWS.format(
        keys="SELECT nextval(seq) AS n, CAST(r.id AS TEXT) AS key FROM strangler_new r"
    ),
    "row_per_statement_images": f"INSERT INTO {PROBE_TABLE} (payload) "
    "SELECT json_agg(row_to_json(r))::text FROM strangler_new r;",
    "row_per_statement_paired": f"INSERT INTO {PROBE_TABLE} (payload) "
    "SELECT json_agg(CASE WHEN r.id IS NULL THEN json_build_array(o.id::text) "
    "ELSE json_build_array(r.id::text, row_to_json(r)) END)::text "
    "FROM strangler_old o FULL JOIN strangler_new r ON o.id = r.id "
    "WHERE r.id IS NULL OR o.id IS NULL OR NOT (o *= r);",
    "row_per_statement_unpaired": f"INSERT INTO {PROBE_TABLE} (payload) "
    "SELECT json_build_array((SELECT json_agg(row_to_json(r)) FROM strangler_new r), "
    "(SELECT json_agg(o.id) FROM strangler_old o))::text;",
    "row_per_statement_keys": f"INSERT INTO {PROBE_TABLE} (payload) "
    "SELECT json_build_array((SELECT json_agg(r.id) FROM strangler_new r), "
    "(SELECT json_agg(o.id) FROM strangler_old o))::text;",
}
"""The body each design runs for an UPDATE, in place of the shipped one."""


def _median_update(conn: psycopg.Connection[Any], capture: bool, repeat: int) -> float:
    conn.execute("UPDATE strangler_capture SET enabled = %s WHERE context = 'catalog'", [capture])
    seconds: list[float] = []
    for _ in range(repeat):
        seconds.append(_timed(conn, BULK_UPDATE))
        conn.execute(f"TRUNCATE strangler_outbox, {PROBE_TABLE}")
        conn.execute("VACUUM catalog_product")
    return statistics.median(seconds)


_EXPAND_PAIRED = f"""
    INSERT INTO strangler_outbox (id, event_id, context, aggregate_type, aggregate_key,
        operation, payload, origin, request_id, status, attempts, created_at)
    SELECT n, 'm-' || n, 'catalog', 'products', key,
           CASE WHEN image IS NULL THEN 'delete' ELSE 'update' END, image,
           'monolith', 'probe', 'pending', 0, clock_timestamp()
    FROM (SELECT nextval(pg_get_serial_sequence('strangler_outbox', 'id')) AS n,
                 event ->> 0 AS key, (event -> 1)::text AS image
          FROM {PROBE_TABLE} AS captured,
               json_array_elements(captured.payload::json) WITH ORDINALITY AS e(event, i)
          ORDER BY captured.id, e.i) AS events
"""
"""The relay-side half of ``row_per_statement_paired``: its row as an outbox row per event."""


def _median_expand(conn: psycopg.Connection[Any], repeat: int) -> float:
    """Median time to expand one ``row_per_statement_paired`` row (its body installed)."""
    conn.execute("UPDATE strangler_capture SET enabled = true WHERE context = 'catalog'")
    seconds: list[float] = []
    for _ in range(repeat):
        conn.execute(BULK_UPDATE)
        seconds.append(_timed(conn, _EXPAND_PAIRED))
        conn.execute(f"TRUNCATE strangler_outbox, {PROBE_TABLE}")
        conn.execute("VACUUM catalog_product")
    return statistics.median(seconds)


READ_BATCH = 2000
"""Events a relay pass reads (``STRANGLER_RELAY_BATCH_SIZE``'s default)."""


def _read_images(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """What a relay pass's read of row images costs per event, both ways (shipped trigger
    installed): from today's outbox rows, and by key from the monolith's table, as a relay
    of ``row_per_statement_keys`` would read them (batches of :data:`READ_BATCH`)."""
    conn.execute("UPDATE strangler_capture SET enabled = true WHERE context = 'catalog'")
    conn.execute(BULK_UPDATE)
    batches: list[list[str]] = []
    last = 0
    started = time.perf_counter()
    while True:
        batch = conn.execute(
            "SELECT id, aggregate_key, payload FROM strangler_outbox "
            "WHERE context = 'catalog' AND status = 'pending' AND id > %s "
            "ORDER BY status, id LIMIT %s",
            [last, READ_BATCH],
        ).fetchall()
        if not batch:
            break
        last = int(batch[-1][0])
        batches.append([str(row[1]) for row in batch])
    from_outbox_s = time.perf_counter() - started
    started = time.perf_counter()
    for keys in batches:
        conn.execute(
            "SELECT id, row_to_json(p)::text FROM catalog_product AS p "
            "WHERE p.id = ANY(CAST(%s AS bigint[]))",
            [keys],
        ).fetchall()
    by_key_s = time.perf_counter() - started
    conn.execute("TRUNCATE strangler_outbox")
    events = sum(len(keys) for keys in batches)
    return {
        "events": events,
        "from_outbox_us_per_event": round(from_outbox_s * 1e6 / max(1, events), 2),
        "by_key_us_per_event": round(by_key_s * 1e6 / max(1, events), 2),
    }


def bench_designs(monolith: str, rows: int, repeat: int) -> dict[str, Any]:
    seed(monolith, rows)
    with psycopg.connect(libpq_url(monolith), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {PROBE_TABLE} (id bigserial PRIMARY KEY, payload text)")
        conn.execute(
            "INSERT INTO strangler_capture (context, enabled, updated_at) "
            "VALUES ('catalog', false, now()) ON CONFLICT (context) DO NOTHING"
        )
        found = conn.execute("SELECT pg_get_functiondef(%s::regproc)", [FUNCTION]).fetchone()
        if found is None:
            raise RuntimeError(f"no capture function {FUNCTION} in the bench monolith")
        shipped = str(found[0])
        seconds = {"off": _median_update(conn, False, repeat)}
        seconds["current"] = _median_update(conn, True, repeat)
        try:
            for name, capture in DESIGNS.items():
                conn.execute(_BODY.format(function=FUNCTION, capture=capture))
                seconds[name] = _median_update(conn, True, repeat)
            conn.execute(
                _BODY.format(function=FUNCTION, capture=DESIGNS["row_per_statement_paired"])
            )
            expand_s = _median_expand(conn, repeat)
        finally:
            conn.execute(shipped)
        read_images = _read_images(conn)
        seconds["off_again"] = _median_update(conn, False, repeat)
    baseline = (seconds["off"] + seconds["off_again"]) / 2
    return {
        "rows": rows,
        "update_s": {name: round(value, 3) for name, value in seconds.items()},
        "overhead_vs_capture_off": {
            name: round(value / baseline, 2) for name, value in seconds.items()
        },
        "expand_paired_s": round(expand_s, 3),
        "expand_paired_rows_per_s": round(rows / expand_s),
        "read_images": read_images,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the bulk UPDATE")
    parser.add_argument("--repeat", type=int, default=3, help="UPDATEs per design (median)")
    args = parser.parse_args()
    admin = pg_admin_url()
    created: list[str] = []
    figures: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load": os.getloadavg()}}
    try:
        monolith, _service = make_pair(admin, "designs", created)
        figures["capture_designs"] = bench_designs(monolith, args.rows, args.repeat)
    finally:
        for name in created:
            drop_database(admin, name)
    overheads = figures["capture_designs"]["overhead_vs_capture_off"]
    figures["targets"] = {
        f"{name}_overhead_le_1_5": overheads[name] <= 1.5 for name in ("current", *DESIGNS)
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
