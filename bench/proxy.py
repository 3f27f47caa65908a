"""Benchmark: the strangler proxy against direct access, mitmdump (reverse) and nginx.

One load generator for every cell: ``wrk`` (Debian package) when installed, otherwise
a Python generator (asyncio + aiohttp keep-alive clients, one per connection; it tops
out far below wrk, so only its ratios are comparable). Two upstreams: a trivial ASGI
app answering 1 KB of JSON (uvicorn, httptools, uvloop), and the seeded monolith
(``strangler monolith serve`` on a temporary SQLite database, ``GET
/api/v1/products/1/``). Targets: direct, strangler (``python -m strangler_proxy
serve``, access log off; ``strangler_2w``: ``--workers 2``), ``mitmdump --mode reverse:URL`` from ``.venv-mitm`` and
nginx (one worker, upstream keep-alive, access log off) when installed; a missing
peer is reported under ``"missing"``. Concurrency 1, 16, 64, each cell run ``--rounds`` times (default 3) with the
targets interleaved; medians reported. Prints JSON: req/s, p50 and p99 latency in
ms, and req/s as a ratio to direct. Then the slow-client cells (``--slow-clients``,
on by default): one proxy (one worker) on the trivial upstream, normal load at c=16
alone and while 500 idle and 200 slow-header connections (a header byte every half
second, from ten loopback addresses) are open, with the proxy's RSS before and during.

    .venv/bin/python bench/proxy.py                   # about 8 minutes
    .venv/bin/python bench/proxy.py --duration 2 --concurrency 16 --upstreams trivial
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import re
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from migration_plans.control.processes import ManagedProcess, free_port, http_ok, wait_until  # noqa: E402

MITMDUMP = REPO / ".venv-mitm" / "bin" / "mitmdump"
PAYLOAD = json.dumps(
    {"items": [{"id": n, "name": f"item-{n:04d}", "price": "12.50"} for n in range(22)]}
).encode()[:1024]


async def trivial_app(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[Any]],
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
) -> None:
    """The trivial upstream: 1 KB of JSON for any request."""
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(PAYLOAD))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": PAYLOAD})


# -- processes --------------------------------------------------------------------------


def start(argv: list[str], name: str, health: str, logs: Path, **kw: Any) -> ManagedProcess:
    return ManagedProcess.start(argv, name=name, health_url=health, log_dir=logs, cwd=REPO, **kw)


def trivial_upstream(logs: Path) -> tuple[ManagedProcess, str, str]:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "proxy:trivial_app", "--app-dir", str(REPO / "bench")]
    argv += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
    argv += ["--loop", "uvloop", "--http", "httptools"]
    url = f"http://127.0.0.1:{port}"
    return start(argv, "trivial", url + "/", logs), url, "/"


def monolith_upstream(logs: Path, workdir: Path) -> tuple[ManagedProcess, str, str]:
    env = {
        **os.environ,
        "SECRET_KEY": "bench-secret",
        "DATABASE_URL": f"sqlite:///{workdir}/monolith.sqlite3",
    }
    cli = [sys.executable, "-m", "legacy_monolith.cli"]
    for command in (
        ["migrate"],
        ["seed", "--products", "1000", "--customers", "50", "--orders", "50"],
    ):
        subprocess.run([*cli, *command], env=env, cwd=REPO, check=True, capture_output=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start(
        [*cli, "serve", "--port", str(port)], "monolith", url + "/healthz", logs, env=env
    )
    return process, url, "/api/v1/products/1/"


def strangler(
    upstream: str, logs: Path, workdir: Path, workers: int = 1
) -> tuple[ManagedProcess, str]:
    routes = workdir / f"routes-{free_port()}.yaml"
    routes.write_text(f'upstreams:\n  monolith: {{url: "{upstream}"}}\n')
    port = free_port()
    argv = [sys.executable, "-m", "strangler_proxy", "serve", "--routes", str(routes)]
    argv += ["--port", str(port), "--no-access-log", "--workers", str(workers)]
    url = f"http://127.0.0.1:{port}"
    return start(argv, "strangler", url + "/_strangler/health", logs), url


def mitmdump(upstream: str, logs: Path, path: str) -> tuple[ManagedProcess, str]:
    port = free_port()
    argv = [str(MITMDUMP), "--mode", f"reverse:{upstream}", "--listen-host", "127.0.0.1"]
    argv += ["--listen-port", str(port), "-q", "--set", "flow_detail=0"]
    url = f"http://127.0.0.1:{port}"
    return start(argv, "mitmdump", url + path, logs, timeout=60), url


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream backend {{ server {upstream}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }}
  }}
}}
"""


def nginx(upstream: str, logs: Path, workdir: Path, path: str) -> tuple[ManagedProcess, str]:
    port = free_port()
    directory = Path(tempfile.mkdtemp(dir=workdir, prefix="nginx-"))
    conf = directory / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(dir=directory, upstream=upstream.removeprefix("http://"), port=port)
    )
    argv = [
        shutil.which("nginx") or "nginx",
        "-c",
        str(conf),
        "-p",
        str(directory),
        "-e",
        str(directory / "error.log"),
    ]
    url = f"http://127.0.0.1:{port}"
    return start(argv, "nginx", url + path, logs), url


# -- load -------------------------------------------------------------------------------


def run_wrk(url: str, connections: int, duration: float) -> dict[str, float]:
    argv = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration:g}s", "--latency", url]
    out = subprocess.run(
        argv, capture_output=True, text=True, check=True, timeout=duration + 30
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": round(rps, 1),
        "p50_ms": _wrk_ms(out, "50%"),
        "p99_ms": _wrk_ms(out, "99%"),
        "errors": int(errors.group(1)) if errors else 0,
        **({"socket_errors": socket_errors.group(1)} if socket_errors else {}),  # type: ignore[dict-item]
    }


def _wrk_ms(out: str, label: str) -> float:
    value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
    return round(float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], 3)


def run_python(url: str, connections: int, duration: float) -> dict[str, float]:
    """Fallback generator: ``connections`` keep-alive aiohttp clients for ``duration`` s."""
    return asyncio.run(_python_load(url, connections, duration))


async def _python_load(url: str, connections: int, duration: float) -> dict[str, float]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            async with session.get(url) as response:
                await response.read()
                errors += response.status >= 400
            latencies.append(time.perf_counter() - began)

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return latency_summary(latencies, elapsed, errors)


def latency_summary(latencies: list[float], elapsed: float, errors: int) -> dict[str, float]:
    """req/s, p50 and p99 (ms) of one cell's request latencies (seconds)."""
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(cuts[49] * 1000, 3),
        "p99_ms": round(cuts[98] * 1000, 3),
        "errors": errors,
    }


# -- slow clients -----------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


class SlowClients:
    """``idle`` connections that never send and ``slow`` ones that trickle a header."""

    def __init__(self, url: str, idle: int, slow: int) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.address = (host, int(port))
        self.idle, self.slow = idle, slow
        self.sockets: list[socket.socket] = []
        self.slow_sockets: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)

    def __enter__(self) -> SlowClients:
        for n in range(self.idle + self.slow):
            source = (f"127.0.0.{2 + n % 10}", 0)  # under the per-address cap
            sock = socket.create_connection(self.address, timeout=5, source_address=source)
            self.sockets.append(sock)
            if n >= self.idle:
                sock.sendall(b"GET /slow HTTP/1.1\r\nHost: bench\r\nX-Slow: ")
                self.slow_sockets.append(sock)
        self.thread.start()
        return self

    def _trickle(self) -> None:
        while not self.stop.wait(0.5):
            for sock in self.slow_sockets:
                with suppress(OSError):
                    sock.send(b"a")

    def open_count(self) -> int:
        """How many of the connections the proxy still holds open."""
        readable, _, _ = select.select(self.sockets, [], [], 0)
        return len(self.sockets) - len(readable)

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()


def slow_client_cells(
    load: Callable[[str, int, float], dict[str, float]],
    upstream: str,
    path: str,
    logs: Path,
    workdir: Path,
    duration: float,
    idle: int = 500,
    slow: int = 200,
) -> dict[str, Any]:
    """Normal load at c=16 on a fresh proxy: alone, then beside idle and slow clients."""
    process, url = strangler(upstream, logs, workdir)
    try:
        load(url + path, 4, min(1.0, duration))
        before = rss_mib(process.pid)
        alone = {**load(url + path, 16, duration), "proxy_rss_mib": rss_mib(process.pid)}
        with SlowClients(url, idle, slow) as clients:
            connected = rss_mib(process.pid)
            beside = load(url + path, 16, duration)
            beside.update(
                proxy_rss_mib=rss_mib(process.pid),
                slow_connections_open=clients.open_count(),
            )
        return {
            "idle_clients": idle,
            "slow_header_clients": slow,
            "proxy_rss_mib_at_start": before,
            "proxy_rss_mib_with_slow_clients_connected": connected,
            "c=16 alone": alone,
            "c=16 beside slow clients": {
                **beside,
                "ratio_to_alone": round(beside["rps"] / alone["rps"], 3) if alone["rps"] else 0,
            },
        }
    finally:
        process.stop()


# -- the run ----------------------------------------------------------------------------


@contextmanager
def targets(
    upstream: str, path: str, logs: Path, workdir: Path, missing: list[str]
) -> Iterator[dict[str, str]]:
    found = {"direct": upstream}
    with ExitStack() as stack:
        process, found["strangler"] = strangler(upstream, logs, workdir)
        stack.callback(process.stop)
        if (os.cpu_count() or 1) > 1:
            process, found["strangler_2w"] = strangler(upstream, logs, workdir, workers=2)
            stack.callback(process.stop)
        if MITMDUMP.exists():
            process, found["mitmdump"] = mitmdump(upstream, logs, path)
            stack.callback(process.stop)
        elif "mitmdump" not in missing:
            missing.append(f"mitmdump (run `make mitm` to create {MITMDUMP.parent.parent})")
        if shutil.which("nginx"):
            process, found["nginx"] = nginx(upstream, logs, workdir, path)
            stack.callback(process.stop)
        elif not any(m.startswith("nginx") for m in missing):
            missing.append("nginx (apt-get install -y nginx)")
        yield found


def median_cell(
    cells: list[dict[str, Any]], keys: tuple[str, ...] = ("rps", "p50_ms", "p99_ms")
) -> dict[str, Any]:
    """Per-metric medians (of ``keys``) of one cell's rounds, errors summed."""
    middle = {key: statistics.median(cell[key] for cell in cells) for key in keys}
    return {
        **{key: round(value, 3) for key, value in middle.items()},
        "errors": sum(cell.get("errors", 0) for cell in cells),
        "rounds": len(cells),
    }


def measure(
    load: Callable[[str, int, float], dict[str, float]],
    found: dict[str, str],
    path: str,
    concurrency: list[int],
    duration: float,
    rounds: int = 1,
) -> dict[str, dict[str, dict[str, float]]]:
    """Every target at every concurrency, ``rounds`` times interleaved; medians.

    Interleaving puts drift in the machine's load (and the upstream's warm-up) on
    every target alike instead of on whichever ran first.
    """
    for base in found.values():
        load(base + path, 4, min(1.0, duration))  # warm pools and caches
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {name: {} for name in found}
    for _ in range(rounds):
        for connections in concurrency:
            for name, base in found.items():
                cell = load(base + path, connections, duration)
                runs[name].setdefault(f"c={connections}", []).append(cell)
                print(f"  {name:12} c={connections:<3} {cell}", file=sys.stderr)
    table = {
        name: {key: median_cell(cells) for key, cells in by_key.items()}
        for name, by_key in runs.items()
    }
    for cells in table.values():
        for key, cell in cells.items():
            direct = table["direct"][key]["rps"]
            cell["ratio_to_direct"] = round(cell["rps"] / direct, 3) if direct else 0.0
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--upstreams", nargs="+", default=["trivial", "monolith"])
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument(
        "--shadow",
        action="store_true",
        help="then shadowing off vs fixed vs adaptive (bench/shadow_adaptive.py)",
    )
    parser.add_argument(
        "--slow-clients",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="then the slow-client cells (trivial upstream)",
    )
    args = parser.parse_args()

    missing: list[str] = []
    use_wrk = args.generator == "wrk" or (args.generator == "auto" and shutil.which("wrk"))
    if not use_wrk:
        missing.append("wrk (apt-get install -y wrk): using the Python generator")
    load = run_wrk if use_wrk else run_python
    report: dict[str, Any] = {
        "generator": "wrk -t1" if use_wrk else "python asyncio+aiohttp",
        "duration_s": args.duration,
        "rounds": args.rounds,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg": os.getloadavg(),
        },
        "results": {},
        "missing": missing,
    }
    with tempfile.TemporaryDirectory(prefix="strangler-bench-") as tmp:
        workdir = Path(tmp)
        logs = workdir / "logs"
        for upstream_name in args.upstreams:
            print(f"upstream {upstream_name}", file=sys.stderr)
            make = trivial_upstream if upstream_name == "trivial" else None
            process, url, path = make(logs) if make else monolith_upstream(logs, workdir)
            try:
                wait_until(functools.partial(http_ok, url + path), timeout=30, what=upstream_name)
                with targets(url, path, logs, workdir, missing) as found:
                    report["results"][upstream_name] = {
                        "path": path,
                        **measure(load, found, path, args.concurrency, args.duration, args.rounds),
                    }
            finally:
                process.stop()
        if args.slow_clients:
            print("slow clients", file=sys.stderr)
            upstream, base, root = trivial_upstream(logs)
            try:
                wait_until(functools.partial(http_ok, base + root), timeout=30, what="trivial")
                report["slow_clients"] = slow_client_cells(
                    load, base, root, logs, workdir, args.duration
                )
            finally:
                upstream.stop()
    if args.shadow:
        # late: it imports this module. The full shadow matrix is bench/shadow.py.
        from shadow_adaptive import run_adaptive

        report["shadow"] = run_adaptive(load, max(args.duration, 4.0), rounds=args.rounds)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
