"""Benchmark: what live shadowing costs the primary path of the strangler proxy.

Three proxies in front of the same trivial upstream (1 KB of JSON): shadowing off,
shadowing every request to a healthy shadow upstream, and to a shadow upstream
slowed by 200 ms. Same load generator as ``bench/proxy.py`` (wrk when installed).
Prints JSON: req/s, p50 and p99 of the primary path, their ratio to "off", and the
mirror's own counters (queued, dropped, matched) from the proxy's metrics.

    .venv/bin/python bench/shadow.py                       # about two minutes
    .venv/bin/python bench/shadow.py --duration 3 --concurrency 1 16 --sample-rate 0.1
    .venv/bin/python bench/proxy.py --shadow               # the same, after the proxy cells
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import urllib.request
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from proxy import PAYLOAD, run_python, run_wrk, start, trivial_upstream  # noqa: E402

from migration_plans.processes import ManagedProcess, free_port  # noqa: E402

ADMIN_TOKEN = "bench-shadow-admin-token-0123456789"
SLOW_SECONDS = 0.2


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


def slow_upstream(logs: Path) -> tuple[ManagedProcess, str]:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "shadow:slow_app", "--app-dir", str(BENCH)]
    argv += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
    argv += ["--loop", "uvloop", "--http", "httptools"]
    url = f"http://127.0.0.1:{port}"
    return start(argv, "slow-shadow", url + "/", logs, timeout=30), url


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
    primary: str, shadow: str | None, sample_rate: float, logs: Path, workdir: Path
) -> tuple[ManagedProcess, str]:
    routes = workdir / f"routes-{free_port()}.yaml"
    routes.write_text(routes_yaml(primary, shadow, sample_rate))
    port = free_port()
    argv = [sys.executable, "-m", "strangler_proxy", "serve", "--routes", str(routes)]
    argv += ["--port", str(port), "--no-access-log"]
    env = {**os.environ, "STRANGLER_ADMIN_TOKEN": ADMIN_TOKEN}
    env.pop("STRANGLER_REDIS_URL", None)  # compare only: no store round trips in the figures
    url = f"http://127.0.0.1:{port}"
    return start(argv, "strangler", url + "/_strangler/health", logs, env=env), url


def shadow_counters(url: str) -> dict[str, float]:
    request = urllib.request.Request(
        url + "/_strangler/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    counters: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("strangler_shadow_outcomes_total{"):
            labels, value = line.rsplit(" ", 1)
            outcome = labels.split('outcome="', 1)[1].split('"', 1)[0]
            counters[outcome] = counters.get(outcome, 0) + float(value)
    return counters


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median_cell(cells: list[dict[str, float]]) -> dict[str, float]:
    keys = ("rps", "p50_ms", "p99_ms", "proxy_cpu_us_per_request")
    middle = {key: round(statistics.median(cell[key] for cell in cells), 3) for key in keys}
    return {**middle, "errors": sum(cell.get("errors", 0) for cell in cells), "rounds": len(cells)}


def run_shadow(
    load: Callable[[str, int, float], dict[str, float]],
    concurrency: list[int],
    duration: float,
    sample_rate: float = 1.0,
    rounds: int = 3,
) -> dict[str, Any]:
    """Cells ``off``, ``healthy``, ``slow_200ms`` per concurrency, with ratios to ``off``.

    The three proxies run side by side and the cells are measured in turn, ``rounds``
    times, reporting medians: drift in the machine's load hits every cell alike.
    """
    results: dict[str, Any] = {"sample_rate": sample_rate, "slow_shadow_s": SLOW_SECONDS}
    with tempfile.TemporaryDirectory(prefix="strangler-bench-shadow-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        logs = workdir / "logs"
        process, primary, _ = trivial_upstream(logs)
        stack.callback(process.stop)
        process, healthy, _ = trivial_upstream(logs)
        stack.callback(process.stop)
        process, slow = slow_upstream(logs)
        stack.callback(process.stop)
        proxies: dict[str, tuple[ManagedProcess, str]] = {}
        for name, shadow in (("off", None), ("healthy", healthy), ("slow_200ms", slow)):
            proxies[name] = proxy(primary, shadow, sample_rate, logs, workdir)
            stack.callback(proxies[name][0].stop)
            load(proxies[name][1] + "/", 4, min(1.0, duration))  # warm pools
        cells: dict[str, dict[str, list[dict[str, float]]]] = {name: {} for name in proxies}
        for _ in range(rounds):
            for c in concurrency:
                for name, (process, url) in proxies.items():
                    before = cpu_seconds(process.pid)
                    cell = load(url + "/", c, duration)
                    spent = cpu_seconds(process.pid) - before
                    cell["proxy_cpu_us_per_request"] = (
                        spent * 1e6 / max(1.0, cell["rps"] * duration)
                    )
                    print(f"  shadow {name:10} c={c:<3} {cell}", file=sys.stderr)
                    cells[name].setdefault(f"c={c}", []).append(cell)
        for name, (_, url) in proxies.items():
            results[name] = {key: median_cell(found) for key, found in cells[name].items()}
            results[name]["mirror"] = shadow_counters(url)
    for name in ("healthy", "slow_200ms"):
        for key in (f"c={c}" for c in concurrency):
            base, cell = results["off"][key], results[name][key]
            for metric in ("p50_ms", "p99_ms", "rps"):
                ratio = cell[metric] / base[metric] if base[metric] else 0.0
                cell[f"{metric.split('_')[0]}_vs_off"] = round(ratio, 3)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--sample-rate", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    args = parser.parse_args()
    use_wrk = args.generator == "wrk" or (args.generator == "auto" and shutil.which("wrk"))
    load = run_wrk if use_wrk else run_python
    report = {
        "generator": "wrk -t1" if use_wrk else "python asyncio+aiohttp",
        "duration_s": args.duration,
        "machine": {"cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "shadow": run_shadow(load, args.concurrency, args.duration, args.sample_rate, args.rounds),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
