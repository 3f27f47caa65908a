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
4. ``bulk``: one admin ``UPDATE catalog_product SET price = price + 1`` of ``--bulk-rows``
   rows (default 100,000) with catalog in dual_write:
   - ``capture_overhead``: the UPDATE's time with capture on / off, same run, median of
     three each, interleaved (goal <= 1.5);
   - ``drain_rows_per_s``: the relay process already running, rows / (time from the
     UPDATE's commit until the outbox has nothing pending) (goal >= 20,000);
   - ``partitions_speedup``: the same with ``--partitions 2`` vs 1 (goal >= 1.6), with
     ``drain_cpu_us_per_event`` (the machine's busy CPU per drained event) and
     ``partitions_speedup_ceiling`` (the speedup two partitions would reach at their
     measured CPU per event with every core busy), and the CPU per event by process
     (``drain_cpu_us_per_event_by_process``: the relay, each side's PostgreSQL backends,
     other PostgreSQL processes, everything else);
   - ``steady``: monolith SQL writes (single-row UPDATEs, open loop) at ``--steady-rate``
     (default 1,000/s) for 10 s, relay running: lag p99 from the event's creation to its
     mark as applied (goal <= 100 ms).
   The peer of the drain figure is the backfill's copy rate of the same run (cell 3).

    .venv/bin/python bench/dualwrite.py [--rows 1000000] [--writes 2000] [--rate 200]
    .venv/bin/python bench/dualwrite.py --only bulk --bulk-rows 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dualwrite.backfill import Backfill  # noqa: E402
from dualwrite.capture import set_capture  # noqa: E402
from dualwrite.config import RelaySettings  # noqa: E402
from dualwrite.engines import relay_engine  # noqa: E402
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
# The shipped plans (the mapping, the capture triggers' tables) unless the caller names others.
os.environ.setdefault("STRANGLER_PLANS_DIR", str(REPO / "migration_plans" / "templates"))


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


def _free_ports(count: int) -> int:
    """A port P with P .. P + count - 1 all free now (partition I serves metrics on P + I;
    a taken P + 1 made the second partition, and with it the relay, exit)."""
    while True:
        port = free_port()
        try:
            for offset in range(1, count):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind(("127.0.0.1", port + offset))
        except OSError:
            continue
        return port


def start_relay(monolith: str, service: str, partitions: int = 1) -> ManagedProcess:
    port = _free_ports(partitions)
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
        "--partitions",
        str(partitions),
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


async def open_loop(
    rate: float, total: int, write: Callable[[int, float], Coroutine[Any, Any, None]]
) -> float:
    """Start ``write(n, due)`` at ``n / rate`` s whether or not earlier ones finished;
    returns the seconds from the first start to the last completion."""
    started = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []
    for n in range(total):
        due = started + n / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(write(n, due)))
    await asyncio.gather(*tasks)
    return time.perf_counter() - started


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

        elapsed = await open_loop(rate, total, write)
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


def _timed(conn: psycopg.Connection[Any], statement: str) -> float:
    started = time.perf_counter()
    conn.execute(statement)
    return time.perf_counter() - started


BULK_UPDATE = "UPDATE catalog_product SET price = price + 1"


def _capture_overhead(conn: psycopg.Connection[Any], monolith: str) -> dict[str, Any]:
    engine = relay_engine(monolith)
    off: list[float] = []
    on: list[float] = []
    try:
        for _ in range(3):
            set_capture(engine, "catalog", enabled=False)
            off.append(_timed(conn, BULK_UPDATE))
            set_capture(engine, "catalog", enabled=True)
            on.append(_timed(conn, BULK_UPDATE))
            conn.execute("TRUNCATE strangler_outbox")  # these events are not relayed
    finally:
        engine.dispose()
    return {
        "update_s_capture_off": round(statistics.median(off), 3),
        "update_s_capture_on": round(statistics.median(on), 3),
        "capture_overhead": round(statistics.median(on) / statistics.median(off), 2),
    }


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _process_ticks() -> dict[int, tuple[str, int]]:
    """Every process's command line and CPU jiffies (user + system) so far, from /proc."""
    found: dict[int, tuple[str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(entry.name)] = (command, int(fields[11]) + int(fields[12]))
    return found


def _process_kind(command: str, databases: dict[str, str]) -> str:
    """``relay``, ``postgres_<side>`` for a backend of that side's database, ``postgres_other``
    (autovacuum, WAL writer, ...) or ``other``."""
    if command.startswith("postgres:"):
        for side, name in databases.items():
            if f" {name} " in command:
                return f"postgres_{side}"
        return "postgres_other"
    if "dualwrite" in command and " relay " in command:
        return "relay"
    return "other"


def _cpu_by_kind(before: dict[int, tuple[str, int]], databases: dict[str, str]) -> dict[str, float]:
    """CPU seconds each kind of process (:func:`_process_kind`) used since ``before``; a
    process that ended meanwhile is not counted."""
    used: dict[str, float] = {}
    for pid, (command, ticks) in _process_ticks().items():
        earlier = before.get(pid)
        since = ticks - (earlier[1] if earlier is not None and earlier[0] == command else 0)
        kind = _process_kind(command, databases)
        used[kind] = used.get(kind, 0.0) + since / os.sysconf("SC_CLK_TCK")
    return used


@dataclass(frozen=True)
class Drain:
    """What one drain of the bulk UPDATE's events measured."""

    rows_per_s: float
    cpu_busy_share: float
    """Share of the machine's CPU in use while it drained (1.0: every core busy)."""
    cpu_s_by_process: dict[str, float]


def _drain(
    conn: psycopg.Connection[Any], rows: int, databases: dict[str, str], deadline_s: float = 600
) -> Drain:
    """Run the bulk UPDATE and wait until the relay has nothing pending; the CPU figures
    count from the UPDATE's commit (the relay, PostgreSQL and anything else)."""
    committed = time.perf_counter() + _timed(conn, BULK_UPDATE)
    busy, total = _cpu_ticks()
    processes = _process_ticks()
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        # Whether any event is left, not how many: counting 100,000 pending events every
        # 50 ms took a third of a core from the relay and PostgreSQL it measures.
        row = conn.execute(
            "SELECT NOT EXISTS (SELECT FROM strangler_outbox "
            "WHERE status IN ('pending', 'in_flight'))"
        ).fetchone()
        if row is not None and row[0]:
            rate = rows / (time.perf_counter() - committed)
            busy_after, total_after = _cpu_ticks()
            by_process = _cpu_by_kind(processes, databases)
            return Drain(rate, (busy_after - busy) / max(1, total_after - total), by_process)
        time.sleep(0.05)
    raise TimeoutError(f"the relay did not drain {rows} events in {deadline_s}s")


async def _steady_sql_writes(monolith: str, rate: float, total: int, keys: int) -> dict[str, Any]:
    pool: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
    for _ in range(8):
        pool.put_nowait(await psycopg.AsyncConnection.connect(libpq_url(monolith), autocommit=True))
    lateness: list[float] = []
    failures: list[BaseException] = []

    async def write(n: int, due: float) -> None:
        lateness.append((time.perf_counter() - due) * 1000)
        try:
            await _monolith_write(pool, 1 + n % keys)
        except Exception as exc:  # counted, not fatal: the report says how many failed
            failures.append(exc)

    try:
        elapsed = await open_loop(rate, total, write)
    finally:
        while not pool.empty():
            await pool.get_nowait().close()
    return {
        "achieved_writes_per_s": round((total - len(failures)) / elapsed, 1),
        "failed_writes": len(failures),
        "start_lateness_p99_ms": round(percentile(lateness, 0.99), 3),
    }


def _partitions_ceiling(rates: dict[int, float], busy: dict[int, float]) -> dict[str, Any]:
    """CPU per drained event (all processes: relays, PostgreSQL, the bench's poll) with 1
    and 2 partitions, and the speedup 2 partitions would reach at that cost per event if
    they kept every core of this machine busy: what the machine allows them."""
    cores = os.cpu_count() or 1
    cpu_us = {n: busy[n] * cores * 1e6 / rates[n] for n in rates}
    return {
        "drain_cpu_us_per_event": {str(n): round(value, 1) for n, value in cpu_us.items()},
        "partitions_speedup_ceiling": round(cores * 1e6 / cpu_us[2] / rates[1], 2),
    }


def bench_bulk(admin: str, rows: int, steady_rate: float, created: list[str]) -> dict[str, Any]:
    monolith, service = make_pair(admin, "bulk", created)
    seed(monolith, rows)
    settings = RelaySettings(context="catalog", monolith_url=monolith, service_url=service)
    Backfill(settings).run(progress=False)
    figures: dict[str, Any] = {"rows": rows}
    with psycopg.connect(libpq_url(monolith), autocommit=True) as conn:
        figures.update(_capture_overhead(conn, monolith))
        databases = {
            side: urlsplit(url).path.lstrip("/")
            for side, url in (("monolith", monolith), ("service", service))
        }
        drains: dict[int, Drain] = {}
        for partitions in (1, 2):
            # Each drain starts from the same outbox: the last one's applied events go.
            conn.execute("TRUNCATE strangler_outbox")
            conn.execute("VACUUM ANALYZE strangler_outbox")
            relay = start_relay(monolith, service, partitions)
            try:
                drains[partitions] = _drain(conn, rows, databases)
            finally:
                relay.stop()
        per_partitions = {n: drain.rows_per_s for n, drain in drains.items()}
        cpu_busy = {n: drain.cpu_busy_share for n, drain in drains.items()}
        figures["drain_rows_per_s"] = round(per_partitions[1])
        figures["drain_rows_per_s_2_partitions"] = round(per_partitions[2])
        figures["partitions_speedup"] = round(per_partitions[2] / per_partitions[1], 2)
        figures["drain_cpu_busy_share"] = {str(n): round(share, 2) for n, share in cpu_busy.items()}
        figures.update(_partitions_ceiling(per_partitions, cpu_busy))
        figures["drain_cpu_us_per_event_by_process"] = {
            str(n): {
                kind: round(seconds * 1e6 / rows, 1)
                for kind, seconds in sorted(drain.cpu_s_by_process.items())
            }
            for n, drain in drains.items()
        }
        relay = start_relay(monolith, service)
        try:
            top = conn.execute("SELECT coalesce(max(id), 0) FROM strangler_outbox").fetchone()
            before = int(top[0]) if top is not None else 0
            seconds = 10.0
            load = asyncio.run(
                _steady_sql_writes(monolith, steady_rate, int(steady_rate * seconds), 5000)
            )
            lags, waiting, _ = wait_applied(monolith, time.time() + 60, before)
        finally:
            relay.stop()
    figures["steady"] = {
        "target_writes_per_s": steady_rate,
        "seconds": seconds,
        **load,
        "unapplied_after_drain": waiting,
        "lag": summary(lags),
    }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="backfill rows")
    parser.add_argument("--writes", type=int, default=2000, help="latency samples per mode")
    parser.add_argument("--rate", type=float, default=200.0, help="writes/s for the lag run")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the lag run")
    parser.add_argument("--bulk-rows", type=int, default=100_000, help="rows of the bulk UPDATE")
    parser.add_argument("--steady-rate", type=float, default=1000.0, help="SQL writes/s")
    parser.add_argument(
        "--only",
        choices=["write_latency", "relay_lag", "backfill", "bulk"],
        action="append",
        help="run only these cells (repeatable; default: all)",
    )
    args = parser.parse_args()
    cells = set(args.only or ["write_latency", "relay_lag", "backfill", "bulk"])
    admin = pg_admin_url()
    created: list[str] = []
    figures: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load": os.getloadavg()}}
    try:
        if "write_latency" in cells:
            figures["write_latency"] = bench_latency(admin, args.writes, created)
        if "relay_lag" in cells:
            figures["relay_lag"] = bench_lag(admin, args.rate, args.seconds, created)
        if "backfill" in cells:
            figures["backfill"] = bench_backfill(admin, args.rows, created)
        if "bulk" in cells:
            figures["bulk"] = bench_bulk(admin, args.bulk_rows, args.steady_rate, created)
    finally:
        for name in created:
            drop_database(admin, name)
    checks = {
        "write_latency_p50_ratio_le_1_2": ("write_latency", lambda f: f["p50_ratio"] <= 1.2),
        "relay_lag_p99_le_100ms": ("relay_lag", lambda f: f["all"]["p99_ms"] <= 100),
        "backfill_ge_50k_rows_per_s": ("backfill", lambda f: f["rows_per_s"] >= 50_000),
        "bulk_drain_ge_20k_rows_per_s": ("bulk", lambda f: f["drain_rows_per_s"] >= 20_000),
        "bulk_capture_overhead_le_1_5": ("bulk", lambda f: f["capture_overhead"] <= 1.5),
        "bulk_partitions_speedup_ge_1_6": ("bulk", lambda f: f["partitions_speedup"] >= 1.6),
        "bulk_steady_lag_p99_le_100ms": ("bulk", lambda f: f["steady"]["lag"]["p99_ms"] <= 100),
    }
    figures["targets"] = {
        name: check(figures[cell]) for name, (cell, check) in checks.items() if cell in figures
    }
    if "bulk" in figures and "backfill" in figures:
        figures["bulk"]["drain_vs_backfill_copy"] = round(
            figures["bulk"]["drain_rows_per_s"] / figures["backfill"]["rows_per_s"], 2
        )
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
