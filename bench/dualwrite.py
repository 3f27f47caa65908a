"""Dual-write benchmark (not a test): prints JSON figures.

1. Write latency through the catalog service (real uvicorn process, PATCH over HTTP),
   dual-write off (split, no reverse sync: no outbox) vs on (dual_write: row + outbox
   event in one transaction, relay process running). Target: p50 ratio <= 1.2.
2. Relay lag at a steady write rate (default 200 writes/s, half monolith-internal
   writes captured by the triggers, half service writes), services run as
   ``strangler up`` runs them (inline relay setting on): from the event's outbox
   ``created_at`` to its ``applied_at``. The load is open-loop (each write starts on
   schedule whether or not earlier ones finished); the achieved rate counts
   successful writes over first start to last completion. Target: p99 <= 100 ms.
3. Backfill throughput on ``--rows`` monolith products (default 1,000,000), PostgreSQL
   to PostgreSQL. Target: >= 50k rows/s (ghostferry's published best: ~33k rows/s).

    .venv/bin/python bench/dualwrite.py [--rows 1000000] [--writes 2000] [--rate 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dualwrite.backfill import Backfill  # noqa: E402
from dualwrite.capture import set_capture  # noqa: E402
from dualwrite.config import RelaySettings  # noqa: E402
from migration_plans.control.processes import ManagedProcess, free_port, uvicorn_argv  # noqa: E402
from migration_plans.core.identity import IDENTITY_HEADER, Identity, sign_identity  # noqa: E402
from migration_plans.testing.databases import (  # noqa: E402
    create_database,
    drop_database,
    libpq_url,
    pg_admin_url,
    unique_name,
)

KEY = "bench-identity-key"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(values, 0.5), 3),
        "p99_ms": round(percentile(values, 0.99), 3),
        "mean_ms": round(statistics.fmean(values), 3),
        "n": len(values),
    }


def django_migrate(url: str) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "tests.dualwrite.monolith_settings",
        "DEBUG": "true",
        "PYTHONPATH": str(REPO),
    }
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--verbosity", "0"],
        cwd=REPO,
        env=env,
        check=True,
    )


def make_pair(admin: str, label: str, created: list[str]) -> tuple[str, str]:
    from extracted_services.common.migrations import upgrade

    names = [unique_name(f"strangler_bench_{label}_m"), unique_name(f"strangler_bench_{label}_s")]
    created.extend(names)
    monolith, service = (create_database(admin, name) for name in names)
    django_migrate(monolith)
    upgrade("catalog", service)
    return monolith, service


def seed(monolith: str, rows: int) -> None:
    with psycopg.connect(libpq_url(monolith)) as conn:
        conn.execute(
            "INSERT INTO catalog_category (id, name, slug, description) "
            "SELECT n, 'Category ' || n, 'category-' || n, '' FROM generate_series(1, 100) n"
        )
        conn.execute(
            "INSERT INTO catalog_product (sku, name, description, price, is_active, "
            "category_id, created_at, updated_at) SELECT 'SKU-' || n, 'Product ' || n, "
            "'description of product ' || n, (n %% 10000) * 0.01 + 1, n %% 5 <> 0, 1 + n %% 100, "
            "now(), now() FROM generate_series(1, %s) n",
            [rows],
        )
        conn.execute("ANALYZE catalog_product")


def env_for(monolith: str, service: str, **extra: str) -> dict[str, str]:
    return {
        "CATALOG_DATABASE_URL": service,
        "STRANGLER_MONOLITH_DATABASE_URL": monolith,
        "STRANGLER_IDENTITY_KEY": KEY,
        "STRANGLER_BROKER_URL": os.environ.get("STRANGLER_REDIS_URL", "redis://127.0.0.1:6379/0"),
        "STRANGLER_RELAY_QUEUE": f"dualwrite-bench-{os.getpid()}",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def start(argv: list[str], name: str, env: dict[str, str], health: str | None) -> ManagedProcess:
    return ManagedProcess.start(
        argv, name=name, health_url=health, env=env, cwd=REPO, log_dir=REPO / "var" / "log"
    )


def start_service(monolith: str, service: str, **extra: str) -> tuple[ManagedProcess, str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = uvicorn_argv("extracted_services.catalog.main:create_app", port, factory=True)
    process = start(argv, "bench-catalog", env_for(monolith, service, **extra), f"{base}/healthz")
    return process, base


def start_relay(monolith: str, service: str) -> ManagedProcess:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "dualwrite",
        "relay",
        "catalog",
        "--log-level",
        "WARNING",
        "--metrics-port",
        str(port),
    ]
    env = env_for(monolith, service, STRANGLER_PHASE="dual_write")
    return start(argv, "bench-relay", env, f"http://127.0.0.1:{port}/metrics")


def patch_latencies(bases: dict[str, str], writes: int, products: int) -> dict[str, list[float]]:
    """PATCH the same products through each service in turn (interleaved: same conditions)."""
    header = sign_identity(Identity(sub="bench"), key=KEY.encode(), audience="catalog", ttl=3600)
    timings: dict[str, list[float]] = {mode: [] for mode in bases}
    clients = {
        mode: httpx.Client(base_url=base, headers={IDENTITY_HEADER: header})
        for mode, base in bases.items()
    }
    try:
        for n in range(writes + 50):
            for mode, client in clients.items():
                key = 1 + n % products
                body = {"price": f"{10 + n % 90}.{n % 100:02d}"}
                started = time.perf_counter()
                response = client.patch(f"/api/v1/products/{key}/", json=body)
                elapsed = (time.perf_counter() - started) * 1000
                response.raise_for_status()
                if n >= 50:  # warm-up
                    timings[mode].append(elapsed)
    finally:
        for client in clients.values():
            client.close()
    return timings


def bench_latency(admin: str, writes: int, created: list[str]) -> dict[str, Any]:
    monolith, service = make_pair(admin, "lat", created)
    seed(monolith, 1000)
    Backfill(RelaySettings(context="catalog", monolith_url=monolith, service_url=service)).run(
        progress=False
    )
    relay = start_relay(monolith, service)
    off, off_base = start_service(
        monolith, service, STRANGLER_PHASE="split", CATALOG_REVERSE_SYNC="false"
    )
    on, on_base = start_service(
        monolith, service, STRANGLER_PHASE="dual_write", CATALOG_INLINE_RELAY="true"
    )
    try:
        timings = patch_latencies({"off": off_base, "on": on_base}, writes, 1000)
    finally:
        for process in (on, off, relay):
            process.stop()
    results: dict[str, Any] = {mode: summary(values) for mode, values in timings.items()}
    results["p50_ratio"] = round(results["on"]["p50_ms"] / results["off"]["p50_ms"], 3)
    results["p99_ratio"] = round(results["on"]["p99_ms"] / results["off"]["p99_ms"], 3)
    return results


async def _monolith_write(pool: asyncio.Queue[psycopg.AsyncConnection[Any]], key: int) -> None:
    conn = await pool.get()
    try:
        await conn.execute(
            "UPDATE catalog_product SET price = price + 0.01, updated_at = now() WHERE id = %s",
            [key],
        )
    finally:
        pool.put_nowait(conn)


async def _service_write(client: aiohttp.ClientSession, key: int, n: int) -> None:
    body = {"price": f"{n % 90 + 10}.50"}
    async with client.patch(f"/api/v1/products/{key}/", json=body) as response:
        await response.read()
        response.raise_for_status()


class LoadGenerator:
    """Open-loop writes: write ``n`` starts at ``n / rate`` s whether or not earlier ones finished.

    Even writes are monolith-internal SQL (captured by the triggers, products 501-1000),
    odd ones are service PATCHes (products 1-500). Connections are opened once and
    kept across runs (warm-up, then measurement), as an application's pool would be.
    """

    def __init__(self, monolith: str, base: str) -> None:
        self.monolith = monolith
        self.base = base
        self.pool: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
        self.client: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        for _ in range(8):
            conn = await psycopg.AsyncConnection.connect(libpq_url(self.monolith), autocommit=True)
            self.pool.put_nowait(conn)
        header = sign_identity(
            Identity(sub="bench"), key=KEY.encode(), audience="catalog", ttl=3600
        )
        # aiohttp, not httpx: an httpx.AsyncClient cost ~4 ms of CPU per write here, which
        # starved the scheduler on 2 cores (writes started seconds late).
        self.client = aiohttp.ClientSession(
            base_url=self.base,
            headers={IDENTITY_HEADER: header},
            connector=aiohttp.TCPConnector(limit=64),
        )

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
        while not self.pool.empty():
            await self.pool.get_nowait().close()

    async def run(self, rate: float, total: int) -> dict[str, Any]:
        """``total`` writes at ``rate``/s. The achieved rate counts only the writes that
        succeeded, over the time from the first start to the last completion."""
        assert self.client is not None
        client = self.client
        lateness: list[float] = []
        failures: list[BaseException] = []

        async def write(n: int, due: float) -> None:
            lateness.append((time.perf_counter() - due) * 1000)
            try:
                if n % 2:
                    await _service_write(client, 1 + n % 500, n)
                else:
                    await _monolith_write(self.pool, 501 + n % 500)
            except Exception as exc:  # counted, not fatal: the report says how many failed
                failures.append(exc)

        started = time.perf_counter()
        tasks = []
        for n in range(total):
            due = started + n / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(write(n, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
        return {
            "achieved_writes_per_s": round((total - len(failures)) / elapsed, 1),
            "failed_writes": len(failures),
            "start_lateness_p99_ms": round(percentile(lateness, 0.99), 3),
        }


def wait_applied(url: str, deadline: float, after: int = 0) -> tuple[list[float], int, int]:
    """Wait until the outbox at ``url`` has nothing unapplied (or ``deadline``).

    Returns the lag (ms) of every applied event with an id above ``after``, how many
    events were still unapplied, and the largest outbox id.
    """
    waiting = 0
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM strangler_outbox WHERE status IN ('pending', 'in_flight')"
            ).fetchone()
            waiting = row[0] if row is not None else 0
            if waiting == 0 or time.time() >= deadline:
                break
            time.sleep(0.2)
        rows = conn.execute(
            "SELECT extract(epoch FROM applied_at - created_at) * 1000 FROM strangler_outbox "
            "WHERE status = 'applied' AND id > %s",
            [after],
        ).fetchall()
        top = conn.execute("SELECT coalesce(max(id), 0) FROM strangler_outbox").fetchone()
    return [float(row[0]) for row in rows], waiting, int(top[0]) if top else 0


async def _warm_then_measure(
    monolith: str,
    base: str,
    rate: float,
    warmup: float,
    seconds: float,
    outboxes: dict[str, str],
) -> tuple[dict[str, Any], dict[str, int]]:
    """Warm-up writes, drained; then the measured writes. Returns their figures and,
    per outbox, the last id of the warm-up."""
    generator = LoadGenerator(monolith, base)
    await generator.open()
    try:
        await generator.run(rate, int(rate * warmup))
        deadline = time.time() + 60
        before = {
            side: (await asyncio.to_thread(wait_applied, url, deadline))[2]
            for side, url in outboxes.items()
        }
        return await generator.run(rate, int(rate * seconds)), before
    finally:
        await generator.close()


def bench_lag(
    admin: str, rate: float, seconds: float, created: list[str], warmup: float = 2.0
) -> dict[str, Any]:
    monolith, service = make_pair(admin, "lag", created)
    seed(monolith, 1000)
    settings = RelaySettings(context="catalog", monolith_url=monolith, service_url=service)
    Backfill(settings).run(progress=False)
    relay = start_relay(monolith, service)
    # As `strangler up` runs it: inline relay setting on (on PostgreSQL the service then
    # leaves its events to the relay loop, which its commits NOTIFY).
    process, base = start_service(
        monolith, service, STRANGLER_PHASE="dual_write", CATALOG_INLINE_RELAY="true"
    )
    outboxes = {"monolith_to_service": monolith, "service_to_monolith": service}
    try:
        # Warm-up at the same rate (connections, statement caches, table reflection);
        # its events are drained and left out of the figures.
        load, before = asyncio.run(
            _warm_then_measure(monolith, base, rate, warmup, seconds, outboxes)
        )
        deadline = time.time() + 60
        drained = {
            side: wait_applied(url, deadline, before[side]) for side, url in outboxes.items()
        }
    finally:
        process.stop()
        relay.stop()
    lags = {side: values for side, (values, _, _) in drained.items()}
    every = [value for values in lags.values() for value in values]
    return {
        "target_writes_per_s": rate,
        "seconds": seconds,
        "warmup_seconds_excluded": warmup,
        **load,
        "unapplied_after_drain": sum(waiting for _, waiting, _ in drained.values()),
        "all": summary(every),
        **{side: summary(values) for side, values in lags.items() if values},
    }


def bench_backfill(admin: str, rows: int, created: list[str]) -> dict[str, Any]:
    monolith, service = make_pair(admin, "bf", created)
    seed(monolith, rows)
    settings = RelaySettings(context="catalog", monolith_url=monolith, service_url=service)
    job = Backfill(settings, chunk_size=50_000)
    set_capture(job.monolith, "catalog", enabled=False)
    result = job.run(progress=sys.stderr.isatty())
    job.close()
    return {
        "rows": result.total,
        "seconds": round(result.seconds, 2),
        "rows_per_s": round(result.rows_per_second),
        "vs_ghostferry_33k": round(result.rows_per_second / 33_000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="backfill rows")
    parser.add_argument("--writes", type=int, default=2000, help="latency samples per mode")
    parser.add_argument("--rate", type=float, default=200.0, help="writes/s for the lag run")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the lag run")
    args = parser.parse_args()
    admin = pg_admin_url()
    created: list[str] = []
    figures: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}}
    try:
        figures["write_latency"] = bench_latency(admin, args.writes, created)
        figures["relay_lag"] = bench_lag(admin, args.rate, args.seconds, created)
        figures["backfill"] = bench_backfill(admin, args.rows, created)
    finally:
        for name in created:
            drop_database(admin, name)
    figures["targets"] = {
        "write_latency_p50_ratio_le_1_2": figures["write_latency"]["p50_ratio"] <= 1.2,
        "relay_lag_p99_le_100ms": figures["relay_lag"]["all"]["p99_ms"] <= 100,
        "backfill_ge_50k_rows_per_s": figures["backfill"]["rows_per_s"] >= 50_000,
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
