"""Benchmark: what live shadowing costs the primary path of the strangler proxy.

Three proxies in front of the same trivial upstream (1 KB of JSON): shadowing off,
shadowing every request to a healthy shadow upstream, and to a shadow upstream
slowed by 200 ms. The mirror runs as the proxy runs it by default: a sidecar
process in ``SCHED_IDLE`` (``--mode inline``: in the proxy's event loop), with
adaptive shedding off (``STRANGLER_SHADOW_ADAPTIVE=0``: every copy is offered; the
shedder's own comparison is ``bench/shadow_adaptive.py``). Two loads:

- closed loop, the generator of ``bench/proxy.py`` (wrk when installed) at each
  ``--concurrency``: c=16 saturates this machine, so it shows what the primary pays
  when the cores are all taken;
- open loop at a fixed ``--rate`` below saturation (Python, asyncio + aiohttp;
  latency counted from each request's scheduled start, so a stall is not hidden).

Target (issue 7): p99 with shadowing on at most 10% above "off". A control cell,
``off_idle_burner``, measures "off" while a busy loop runs in ``SCHED_IDLE``: the
cost on this machine of any CPU work at the lowest priority, which no sidecar
priority can get under.

The shadow upstream stands in for another host, but here it shares the two cores
with the primary path. ``--shadow-priority normal idle`` (the default) runs the
whole matrix twice: with the shadow upstreams at normal priority (what this box
really does), and in ``SCHED_IDLE`` (``chrt --idle 0``), closer to a candidate on
its own machine. Both are in the JSON, under ``by_shadow_priority``.

Prints JSON: req/s, p50 and p99 of the primary path and their ratio to "off", per
cell the mirror's counters from the proxy's metrics (``offered`` copies, ``dropped``:
not mirrored because the sidecar's buffer or queue was full, ``compared``), and
whether the target held.

    .venv/bin/python bench/shadow.py                       # about five minutes
    .venv/bin/python bench/shadow.py --duration 3 --concurrency 16 --shadow-priority normal
    .venv/bin/python bench/shadow_adaptive.py              # off vs fixed vs adaptive shedding
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from proxy import (  # noqa: E402
    PAYLOAD,
    latency_summary,
    run_python,
    run_wrk,
    start,
    trivial_upstream,
)
from proxy import median_cell as proxy_median_cell  # noqa: E402

from migration_plans.control.processes import ManagedProcess, free_port  # noqa: E402
from strangler_proxy.shadow.engine import outcome_totals  # noqa: E402

ADMIN_TOKEN = "bench-shadow-admin-token-0123456789"
SLOW_SECONDS = 0.2
TARGET_P99_RATIO = 1.10
PRIORITIES = ("normal", "idle")
CELLS = ("off", "healthy", "slow_200ms", "off_idle_burner")


async def slow_app(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[Any]],
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
) -> None:
    """The trivial upstream, 200 ms late."""
    if scope["type"] != "http":
        return
    await asyncio.sleep(SLOW_SECONDS)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(PAYLOAD))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": PAYLOAD})


def shadow_upstream(app: str, logs: Path, priority: str) -> tuple[ManagedProcess, str]:
    """A shadow upstream (``proxy:trivial_app`` or ``shadow:slow_app``), ``SCHED_IDLE`` if asked."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", app, "--app-dir", str(BENCH)]
    argv += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
    argv += ["--loop", "uvloop", "--http", "httptools"]
    if priority == "idle":
        argv = ["chrt", "--idle", "0", *argv]
    url = f"http://127.0.0.1:{port}"
    return start(argv, f"shadow-{app.split(':')[1]}", url + "/", logs, timeout=30), url


def routes_yaml(primary: str, shadow: str | None, sample_rate: float) -> str:
    text = f'upstreams:\n  monolith: {{url: "{primary}"}}\n'
    if shadow is None:
        return text
    text += f'  candidate: {{url: "{shadow}"}}\n'
    text += "contexts:\n  bench:\n    routes:\n"
    text += "      - {name: everything, prefix: /, methods: [GET], upstream: monolith,\n"
    text += f"         shadow: {{upstream: candidate, sample_rate: {sample_rate}}}}}\n"
    return text


def proxy(
    primary: str,
    shadow: str | None,
    sample_rate: float,
    logs: Path,
    workdir: Path,
    mode: str = "process",
    **settings: str,
) -> tuple[ManagedProcess, str]:
    """A proxy in front of ``primary`` mirroring to ``shadow``; ``settings``: more
    ``STRANGLER_SHADOW_*`` variables (e.g. ``STRANGLER_SHADOW_ADAPTIVE="0"``)."""
    routes = workdir / f"routes-{free_port()}.yaml"
    routes.write_text(routes_yaml(primary, shadow, sample_rate))
    port = free_port()
    argv = [sys.executable, "-m", "strangler_proxy", "serve", "--routes", str(routes)]
    argv += ["--port", str(port), "--no-access-log"]
    env = {**os.environ, "STRANGLER_ADMIN_TOKEN": ADMIN_TOKEN, "STRANGLER_SHADOW_MODE": mode}
    env.update(settings)
    env.pop("STRANGLER_REDIS_URL", None)  # compare only: no store round trips in the figures
    url = f"http://127.0.0.1:{port}"
    return start(argv, "strangler", url + "/_strangler/health", logs, env=env), url


def shadow_counters(url: str) -> dict[str, float]:
    request = urllib.request.Request(
        url + "/_strangler/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return outcome_totals(response.read().decode())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_loop(url: str, rate: float, duration: float) -> dict[str, float]:
    """GET ``url`` at a fixed ``rate`` for ``duration`` s, whatever the answers' pace.

    Latency runs from each request's scheduled start, so a stall in the proxy shows in
    every request scheduled during it (no coordinated omission).
    """
    import uvloop

    return uvloop.run(_open_loop(url, rate, duration))


async def _open_loop(url: str, rate: float, duration: float) -> dict[str, float]:
    import aiohttp

    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors = 0

    async def one(session: aiohttp.ClientSession, at: float) -> None:
        nonlocal errors
        try:
            async with session.get(url) as response:
                await response.read()
                errors += response.status >= 400
        except aiohttp.ClientError:
            errors += 1
            return
        latencies.append(loop.time() - at)

    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        start = loop.time() + 0.05
        tasks = []
        for index in range(int(rate * duration)):
            at = start + index / rate
            if at > loop.time():
                await asyncio.sleep(at - loop.time())
            tasks.append(asyncio.create_task(one(session, at)))
        await asyncio.gather(*tasks)
        elapsed = loop.time() - start
    return latency_summary(latencies, elapsed, errors)


def mirror_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What the mirror did with one cell's copies (counts reported by the sidecar lag ~0.1 s)."""

    def grew(*outcomes: str) -> float:
        return sum(after.get(o, 0) - before.get(o, 0) for o in outcomes)

    return {
        "offered": grew("queued", "dropped"),
        "dropped": grew("dropped"),
        "compared": grew("matched", "mismatched"),
        "shadow_errors": grew("shadow_error"),
    }


def median_cell(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """The proxy bench's medians plus CPU per request; the mirror's counts summed."""
    found = proxy_median_cell(cells, ("rps", "p50_ms", "p99_ms", "proxy_cpu_us_per_request"))
    mirror: dict[str, float] = {}
    for cell in cells:
        for key, value in cell.get("mirror", {}).items():
            mirror[key] = mirror.get(key, 0) + value
    if mirror:
        share = mirror["dropped"] / mirror["offered"] if mirror["offered"] else 0.0
        found["mirror"] = {**mirror, "dropped_share": round(share, 3)}
    return found


Load = Callable[[str], dict[str, float]]


def measure_cell(process: ManagedProcess, url: str, load: Load, duration: float) -> dict[str, Any]:
    """One load on one proxy: latency, the proxy's CPU per request, the mirror's counts."""
    counters = shadow_counters(url)
    before = cpu_seconds(process.pid)
    cell: dict[str, Any] = dict(load(url + "/"))
    spent = cpu_seconds(process.pid) - before
    cell["proxy_cpu_us_per_request"] = spent * 1e6 / max(1.0, cell["rps"] * duration)
    delta = mirror_delta(counters, shadow_counters(url))
    if delta["offered"]:
        cell["mirror"] = delta
    return cell


def _ratios(results: dict[str, Any], loads: list[str]) -> None:
    for name in ("healthy", "slow_200ms", "off_idle_burner"):
        for key in loads:
            base, cell = results["off"][key], results[name][key]
            for metric in ("p50_ms", "p99_ms", "rps"):
                ratio = cell[metric] / base[metric] if base[metric] else 0.0
                cell[f"{metric.split('_')[0]}_vs_off"] = round(ratio, 3)
            cell["p99_target_met"] = cell["p99_vs_off"] <= TARGET_P99_RATIO


def run_matrix(
    loads: dict[str, Load],
    duration: float,
    sample_rate: float,
    rounds: int,
    mode: str,
    priority: str,
) -> dict[str, Any]:
    """Cells ``off``, ``healthy``, ``slow_200ms`` per load, with ratios to ``off``.

    The three proxies run side by side and the cells are measured in turn, ``rounds``
    times, reporting medians: drift in the machine's load hits every cell alike.
    """
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="strangler-bench-shadow-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        logs = workdir / "logs"
        process, primary, _ = trivial_upstream(logs)
        stack.callback(process.stop)
        shadows: dict[str, str | None] = {"off": None}
        for name, app in (("healthy", "proxy:trivial_app"), ("slow_200ms", "shadow:slow_app")):
            process, shadows[name] = shadow_upstream(app, logs, priority)
            stack.callback(process.stop)
        proxies: dict[str, tuple[ManagedProcess, str]] = {}
        for name, shadow in shadows.items():
            # every copy offered to the mirror: what mirroring costs (shedding has its own
            # cells, bench/shadow_adaptive.py)
            proxies[name] = proxy(
                primary, shadow, sample_rate, logs, workdir, mode, STRANGLER_SHADOW_ADAPTIVE="0"
            )
            stack.callback(proxies[name][0].stop)
            next(iter(loads.values()))(proxies[name][1] + "/")  # warm pools, start the sidecar
        cells: dict[str, dict[str, list[dict[str, Any]]]] = {name: {} for name in CELLS}
        for _ in range(rounds):
            for key, load in loads.items():
                for name in CELLS:
                    process, url = proxies[name.removesuffix("_idle_burner")]
                    with idle_burner(name.endswith("_idle_burner")):
                        cell = measure_cell(process, url, load, duration)
                    print(f"  shadow[{priority}] {name:16} {key:<12} {cell}", file=sys.stderr)
                    cells[name].setdefault(key, []).append(cell)
        for name in CELLS:
            results[name] = {key: median_cell(found) for key, found in cells[name].items()}
        for name, (_, url) in proxies.items():
            results[name]["mirror_totals"] = shadow_counters(url)
    _ratios(results, list(loads))
    return results


@contextmanager
def idle_burner(wanted: bool) -> Iterator[None]:
    """A busy loop in ``SCHED_IDLE`` while the block runs (when ``wanted``).

    The control cell ``off_idle_burner``: what CPU work at the lowest priority alone
    does to the primary on this machine (the floor under any mirror sidecar).
    """
    if not wanted:
        yield
        return
    burner = subprocess.Popen(["chrt", "--idle", "0", sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        burner.kill()
        burner.wait()


def run_shadow(
    load: Callable[[str, int, float], dict[str, float]],
    concurrency: list[int],
    duration: float,
    sample_rate: float = 1.0,
    rounds: int = 3,
    *,
    rate: float = 800.0,
    mode: str = "process",
    priorities: tuple[str, ...] = PRIORITIES,
) -> dict[str, Any]:
    """The whole matrix once per shadow-upstream priority, with the target's verdicts."""
    loads: dict[str, Load] = {
        f"c={c}": (lambda url, c=c: load(url, c, duration)) for c in concurrency
    }
    if rate > 0:
        loads[f"open_{rate:g}rps"] = lambda url: open_loop(url, rate, duration)
    report: dict[str, Any] = {
        "mode": mode,
        "sidecar": "SCHED_IDLE, nice +10" if mode == "process" else "none (inline)",
        "sample_rate": sample_rate,
        "slow_shadow_s": SLOW_SECONDS,
        "target": f"p99 with shadowing <= {TARGET_P99_RATIO:g} x off",
        "shadow_priority_note": (
            "normal: the shadow upstreams compete for this box's 2 cores with the primary "
            "path; idle: they run in SCHED_IDLE (chrt --idle 0), standing in for a candidate "
            "on another host"
        ),
        "by_shadow_priority": {},
    }
    verdicts: dict[str, dict[str, bool]] = {}
    for priority in priorities:
        results = run_matrix(loads, duration, sample_rate, rounds, mode, priority)
        report["by_shadow_priority"][priority] = results
        verdicts[priority] = {
            f"{name} {key}": results[name][key]["p99_target_met"]
            for name in ("healthy", "slow_200ms")
            for key in loads
        }
    report["p99_target_met"] = verdicts
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--sample-rate", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--rate", type=float, default=800.0, help="open-loop req/s (0: none)")
    parser.add_argument("--mode", choices=["process", "inline"], default="process")
    parser.add_argument(
        "--shadow-priority",
        choices=PRIORITIES,
        nargs="+",
        default=list(PRIORITIES),
        help="shadow upstreams at normal priority, in SCHED_IDLE, or both (default)",
    )
    args = parser.parse_args()
    use_wrk = args.generator == "wrk" or (args.generator == "auto" and shutil.which("wrk"))
    load = run_wrk if use_wrk else run_python
    report = {
        "generator": "wrk -t1" if use_wrk else "python asyncio+aiohttp",
        "duration_s": args.duration,
        "machine": {"cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "shadow": run_shadow(
            load,
            args.concurrency,
            args.duration,
            args.sample_rate,
            args.rounds,
            rate=args.rate,
            mode=args.mode,
            priorities=tuple(args.shadow_priority),
        ),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
