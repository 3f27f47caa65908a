"""Benchmark: what live shadowing costs the primary path of the strangler proxy.

Three proxies in front of the same trivial upstream (1 KB of JSON): shadowing off,
shadowing every request to a healthy shadow upstream, and to a shadow upstream
slowed by 200 ms. Same load generator as ``bench/proxy.py`` (wrk when installed).
Prints JSON: req/s, p50 and p99 of the primary path, their ratio to "off", and the
mirror's own counters (queued, dropped, matched) from the proxy's metrics.

    .venv/bin/python bench/shadow.py                       # about a minute
    .venv/bin/python bench/shadow.py --duration 3 --concurrency 1 16 --sample-rate 0.1
    .venv/bin/python bench/proxy.py --shadow               # the same, after the proxy cells
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
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


def run_shadow(
    load: Callable[[str, int, float], dict[str, float]],
    concurrency: list[int],
    duration: float,
    sample_rate: float = 1.0,
) -> dict[str, Any]:
    """Cells ``off``, ``healthy``, ``slow_200ms`` per concurrency, with ratios to ``off``."""
    results: dict[str, Any] = {"sample_rate": sample_rate, "slow_shadow_s": SLOW_SECONDS}
    with tempfile.TemporaryDirectory(prefix="strangler-bench-shadow-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        logs = workdir / "logs"
        process, primary, _ = trivial_upstream(logs)
        stack.callback(process.stop)
        process, healthy = trivial_upstream(logs)[:2]
        stack.callback(process.stop)
        process, slow = slow_upstream(logs)
        stack.callback(process.stop)
        for name, shadow in (("off", None), ("healthy", healthy), ("slow_200ms", slow)):
            process, url = proxy(primary, shadow, sample_rate, logs, workdir)
            try:
                load(url + "/", 4, min(1.0, duration))  # warm pools
                cells = {f"c={c}": load(url + "/", c, duration) for c in concurrency}
                for key, cell in cells.items():
                    print(f"  shadow {name:10} {key:5} {cell}", file=sys.stderr)
                cells["mirror"] = shadow_counters(url)  # type: ignore[assignment]
                results[name] = cells
            finally:
                process.stop()
    for name in ("healthy", "slow_200ms"):
        for key in (f"c={c}" for c in concurrency):
            base, cell = results["off"][key], results[name][key]
            cell["p99_vs_off"] = round(cell["p99_ms"] / base["p99_ms"], 3) if base["p99_ms"] else 0
            cell["p50_vs_off"] = round(cell["p50_ms"] / base["p50_ms"], 3) if base["p50_ms"] else 0
            cell["rps_vs_off"] = round(cell["rps"] / base["rps"], 3) if base["rps"] else 0
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--sample-rate", type=float, default=1.0)
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    args = parser.parse_args()
    use_wrk = args.generator == "wrk" or (args.generator == "auto" and shutil.which("wrk"))
    load = run_wrk if use_wrk else run_python
    report = {
        "generator": "wrk -t1" if use_wrk else "python asyncio+aiohttp",
        "duration_s": args.duration,
        "machine": {"cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "shadow": run_shadow(load, args.concurrency, args.duration, args.sample_rate),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
