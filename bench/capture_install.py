"""Installing capture on a live table (not a test): prints JSON figures.

A monolith transaction holds ``catalog_product`` (an uncommitted UPDATE) for
``--hold`` seconds (default 3) while ``install_capture`` must put the products'
triggers in again (one of them was disabled: DROP TRIGGER needs the table's ACCESS
EXCLUSIVE lock). Meanwhile an application session writes another product every 5 ms.
Each of the DDL's lock waits queues those writes behind it until its lock timeout, so
the longest write is the stall the application sees. Measured with the shipped
``DDL_LOCK_TIMEOUT`` against the peer, the 1 s timeout of earlier versions, alternately,
``--rounds`` times each (default 2), on the bulk benchmark's pair.

    .venv/bin/python bench/capture_install.py [--hold 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.dualwrite import make_pair, seed  # noqa: E402
from dualwrite import capture  # noqa: E402
from dualwrite.engines import relay_engine  # noqa: E402
from migration_plans.core.settings import mapping_for  # noqa: E402
from migration_plans.testing.databases import drop_database, libpq_url, pg_admin_url  # noqa: E402

PEER_TIMEOUT = "1s"
"""``DDL_LOCK_TIMEOUT`` before it was shortened."""


class _Writer(threading.Thread):
    """Writes one product every 5 ms on its own connection and keeps each write's time."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.seconds: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                started = time.perf_counter()
                conn.execute("UPDATE catalog_product SET price = price WHERE id = 2")
                self.seconds.append(time.perf_counter() - started)
                self.stop.wait(0.005)


def install_under_a_held_table(monolith: str, lock_timeout: str, hold: float) -> dict[str, Any]:
    capture.DDL_LOCK_TIMEOUT = lock_timeout
    engine = relay_engine(monolith, pool_size=1)
    url = libpq_url(monolith)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "ALTER TABLE catalog_product DISABLE TRIGGER strangler_capture_catalog_product_upd"
            )
        writer = _Writer(url)
        with psycopg.connect(url) as holder:
            holder.execute("UPDATE catalog_product SET price = price WHERE id = 1")
            writer.start()
            release = threading.Timer(hold, holder.rollback)
            release.start()
            started = time.perf_counter()
            capture.install_capture(engine, [mapping_for("catalog")])
            installed = time.perf_counter() - started
            release.join()
        time.sleep(0.5)
        writer.stop.set()
        writer.join()
    finally:
        engine.dispose()
    writes = sorted(writer.seconds)
    return {
        "lock_timeout": lock_timeout,
        "writes": len(writes),
        "write_max_ms": round(writes[-1] * 1000, 1),
        "write_p99_ms": round(writes[int(len(writes) * 0.99)] * 1000, 1),
        "write_p50_ms": round(statistics.median(writes) * 1000, 2),
        "writes_over_50ms": sum(1 for s in writes if s > 0.05),
        "installed_after_s": round(installed, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hold", type=float, default=3.0, help="seconds the table is held")
    parser.add_argument("--rounds", type=int, default=2, help="runs per lock timeout")
    args = parser.parse_args()
    shipped = capture.DDL_LOCK_TIMEOUT
    admin = pg_admin_url()
    created: list[str] = []
    runs: dict[str, list[dict[str, Any]]] = {shipped: [], PEER_TIMEOUT: []}
    try:
        monolith, _service = make_pair(admin, "install", created)
        seed(monolith, 1000)
        for _ in range(args.rounds):
            for timeout in (PEER_TIMEOUT, shipped):
                runs[timeout].append(install_under_a_held_table(monolith, timeout, args.hold))
    finally:
        capture.DDL_LOCK_TIMEOUT = shipped
        for name in created:
            drop_database(admin, name)
    worst = {t: max(r["write_max_ms"] for r in found) for t, found in runs.items()}
    figures = {
        "machine": {"cpus": os.cpu_count(), "load": os.getloadavg()},
        "hold_s": args.hold,
        "runs": runs,
        "worst_write_stall_ms": worst,
        "stall_ratio_vs_1s": round(worst[shipped] / worst[PEER_TIMEOUT], 3),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
