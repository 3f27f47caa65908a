"""Recording under ``--workers N``: each worker writes its own flow file, and no request is lost."""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from migration_plans.control.processes import ManagedProcess, free_port, wait_until
from strangler_proxy.shadow._captures import read_capture

pytestmark = pytest.mark.e2e

TABLE = """
upstreams:
  monolith: {{url: "{primary}"}}
contexts:
  catalog:
    routes:
      - name: product-list
        path: /api/v1/products/
        methods: [GET]
        upstream: monolith
        record: {{sample_rate: 1.0}}
"""
BURST = 40


def _recorded_files(folder: Path) -> list[Path]:
    """Flow files that hold at least one flow (the writer flushes after each)."""
    return [path for path in folder.glob("proxy-*.flows") if path.stat().st_size > 0]


def test_every_worker_records_to_its_own_file_and_no_request_is_lost(
    shop: Callable[..., str], tmp_path: Path, mitm_python: Path
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(TABLE.format(primary=shop("primary")))
    port = free_port()
    argv = [sys.executable, "-m", "strangler_proxy", "serve", "--routes", str(routes)]
    argv += ["--port", str(port), "--workers", "2", "--no-access-log"]
    url = f"http://127.0.0.1:{port}"
    # Default file names (var/record/proxy-<pid>.flows), relative to the proxy's folder.
    proxy = ManagedProcess.start(
        argv,
        name="proxy",
        health_url=url + "/_strangler/health",
        cwd=tmp_path,
        log_dir=tmp_path / "logs",
    )
    folder = tmp_path / "var" / "record"
    sent = 0

    def get(_: int) -> int:
        # A new connection per request: the two workers compete for each accept.
        return httpx.get(url + "/api/v1/products/", timeout=10).status_code

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:

            def both_workers_recorded() -> bool:
                nonlocal sent
                statuses = list(pool.map(get, range(BURST)))
                assert statuses == [200] * BURST
                sent += BURST
                return len(_recorded_files(folder)) == 2

            wait_until(both_workers_recorded, timeout=60, what="both workers recorded")
    finally:
        code = proxy.stop(grace=30)  # workers flush their writers at lifespan shutdown
    assert code == 0

    files = sorted(folder.glob("proxy-*.flows"))
    pids = {int(path.stem.removeprefix("proxy-")) for path in files}
    assert len(pids) == 2 and proxy.pid not in pids  # the workers' own pids, not the parent's
    recorded = [exchange for path in files for exchange in read_capture(path)]
    assert len(recorded) == sent
    assert {exchange.request.path for exchange in recorded} == {"/api/v1/products/"}
    assert all(e.response is not None and e.response.status == 200 for e in recorded)
