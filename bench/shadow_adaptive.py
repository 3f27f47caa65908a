"""Benchmark: adaptive load shedding of shadow copies (issue 17) against fixed mirroring.

Three proxies in front of the same trivial upstream (1 KB of JSON), each route mirrored
at ``sample_rate: 1.0`` to a trivial candidate at normal priority on the same two
cores: ``off`` (no shadow block), ``fixed`` (``STRANGLER_SHADOW_ADAPTIVE=0``: every copy
is offered to the mirror, which drops what its buffer cannot take) and ``adaptive``
(the default: the proxy sheds copies while its event loop is saturated). Closed-loop
load from ``bench/proxy.py``'s generator at c=16 (saturates this machine) and c=1;
each cell is warmed at its concurrency for ``warmup`` s first (so the shedder is in
its steady state, as a proxy under that load for a while would be), then measured,
then the mirror's backlog is left to drain; cells interleaved over ``rounds`` (each
proxy first in turn), medians reported.

Goals: ``adaptive.p99_ratio_c16`` (primary p99 with shadowing over "off") <= 1.10 and
``adaptive.compared_share_c1`` (copies compared over requests) >= 0.9.

    .venv/bin/python bench/proxy.py --upstreams trivial --concurrency 1 --rounds 1 --shadow
    .venv/bin/python bench/shadow_adaptive.py --duration 5 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from proxy import median_cell, run_python, run_wrk, trivial_upstream  # noqa: E402
from shadow import ADMIN_TOKEN, TARGET_P99_RATIO, proxy, shadow_upstream  # noqa: E402

from migration_plans.control.processes import ManagedProcess  # noqa: E402
from strangler_proxy.shadow.engine import outcome_totals  # noqa: E402

TARGET_COMPARED_SHARE = 0.9
CELLS = {"off": None, "fixed": "0", "adaptive": "1"}  # STRANGLER_SHADOW_ADAPTIVE
Load = Callable[[str, int, float], dict[str, float]]


def mirror_state(url: str) -> tuple[dict[str, float], float]:
    """The mirror's outcome counters and its sidecar's queue depth, from the metrics."""
    request = urllib.request.Request(
        url + "/_strangler/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    depth = re.search(r"^strangler_shadow_queue_depth (\S+)$", text, re.M)
    return outcome_totals(text), float(depth[1]) if depth else 0.0


def settled_counters(url: str, quiet: float = 1.0, timeout: float = 30.0) -> dict[str, float]:
    """The mirror's counters once its queue is empty and they stopped moving for
    ``quiet`` s: the sidecar has worked off its backlog, so it (and the candidate) do
    not run into the next cell."""
    deadline = time.monotonic() + timeout
    last, _ = mirror_state(url)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now, depth = mirror_state(url)
        if now == last and depth == 0:
            return now
        last = now
    return last


def copies(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What happened to one cell's copies: offered (every GET, at rate 1.0), shed by the
    adaptive shedder, dropped (mirror buffer or queue full), compared. Copies a starved
    ``SCHED_IDLE`` sidecar still holds when the counters settle are in none of them."""

    def grew(*outcomes: str) -> float:
        return sum(after.get(o, 0) - before.get(o, 0) for o in outcomes)

    return {
        "offered": grew("queued", "dropped", "shed"),
        "shed": grew("shed"),
        "dropped": grew("dropped"),
        "compared": grew("matched", "mismatched"),
        "shadow_errors": grew("shadow_error"),
    }


def measure(
    url: str, load: Load, connections: int, duration: float, warmup: float
) -> dict[str, Any]:
    """One cell: warm up at the same concurrency, then measure latency and the copies."""
    load(url + "/", connections, warmup)
    before = settled_counters(url)
    cell: dict[str, Any] = dict(load(url + "/", connections, duration))
    cell["copies"] = copies(before, settled_counters(url))
    return cell


def summarise(cells: list[dict[str, Any]]) -> dict[str, Any]:
    found = median_cell(cells)
    total: dict[str, float] = {}
    for cell in cells:
        for key, value in cell["copies"].items():
            total[key] = total.get(key, 0) + value
    if total.get("offered"):
        found["copies"] = total
        found["compared_share"] = round(total["compared"] / total["offered"], 3)
    return found


def run_adaptive(
    load: Load,
    duration: float,
    rounds: int = 3,
    *,
    warmup: float = 2.0,
    concurrency: tuple[int, ...] = (16, 1),
) -> dict[str, Any]:
    """``off``, ``fixed`` and ``adaptive`` at each concurrency, with the goals' figures."""
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {name: {} for name in CELLS}
    with tempfile.TemporaryDirectory(prefix="strangler-bench-shed-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        logs = workdir / "logs"
        process, primary, _ = trivial_upstream(logs)
        stack.callback(process.stop)
        process, candidate = shadow_upstream("proxy:trivial_app", logs, "normal")
        stack.callback(process.stop)
        proxies: dict[str, tuple[ManagedProcess, str]] = {}
        for name, adaptive in CELLS.items():
            extra = {} if adaptive is None else {"STRANGLER_SHADOW_ADAPTIVE": adaptive}
            shadow = None if adaptive is None else candidate
            proxies[name] = proxy(primary, shadow, 1.0, logs, workdir, **extra)
            stack.callback(proxies[name][0].stop)
        names = list(proxies)
        for round_ in range(rounds):
            for connections in concurrency:
                turn = round_ % len(names)  # each proxy goes first in some round
                for name in names[turn:] + names[:turn]:
                    cell = measure(proxies[name][1], load, connections, duration, warmup)
                    print(f"  shed {name:9} c={connections:<3} {cell}", file=sys.stderr)
                    runs[name].setdefault(f"c={connections}", []).append(cell)
    table = {
        name: {key: summarise(c) for key, c in by_key.items()} for name, by_key in runs.items()
    }
    return {
        "sample_rate": 1.0,
        "candidate": "trivial upstream at normal priority on the same cores",
        "warmup_s": warmup,
        "goals": {
            "p99_ratio_c16": f"<= {TARGET_P99_RATIO:g}",
            "compared_share_c1": f">= {TARGET_COMPARED_SHARE:g}",
        },
        **{name: _figures(table, name) for name in CELLS},
    }


def _figures(table: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    cells = table[name]
    found: dict[str, Any] = dict(cells)
    if name == "off" or "c=16" not in cells:
        return found
    off = table["off"]["c=16"]["p99_ms"]
    found["p99_ratio_c16"] = round(cells["c=16"]["p99_ms"] / off, 3) if off else None
    found["rps_ratio_c16"] = round(cells["c=16"]["rps"] / table["off"]["c=16"]["rps"], 3)
    if "c=1" in cells:
        found["compared_share_c1"] = cells["c=1"].get("compared_share")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each cell")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    args = parser.parse_args()
    use_wrk = args.generator == "wrk" or (args.generator == "auto" and shutil.which("wrk"))
    report = {
        "generator": "wrk -t1" if use_wrk else "python asyncio+aiohttp",
        "duration_s": args.duration,
        "machine": {"cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "shadow": run_adaptive(
            run_wrk if use_wrk else run_python, args.duration, args.rounds, warmup=args.warmup
        ),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
