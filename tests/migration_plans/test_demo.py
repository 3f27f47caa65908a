"""`strangler demo` end to end, as a user runs it: the whole story, real processes, nothing left."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from migration_plans.control.processes import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
PORT_VARIABLES = (
    "STRANGLER_DEMO_PORT",
    "STRANGLER_MONOLITH_PORT",
    "STRANGLER_CATALOG_PORT",
    "STRANGLER_INVENTORY_PORT",
)
STORY = [
    "catalog in shared",
    "comparisons in",
    "$ strangler shadow report",
    "catalog-products-item-reads",
    "catalog: shared -> dual_write",
    "pass: shadow_match_rate",
    "backfill_rows: {'categories': 20, 'products': 2000}",
    "rows updated by QuerySet.update",
    "changes captured by the trigger and in the catalog service",
    "products edited through the proxy",
    "reconcile catalog (full): divergent",
    "1503  missing_in_service",
    "repair monolith->service: wrote 2 rows",
    "reconcile catalog (full): clean",
    "clean runs in a row now: 3",
    "catalog: dual_write -> split",
    "final_reconcile: clean",
    "final reconcile: clean (0 divergent rows)",
    "0 of them during the cut-overs: shared -> dual_write: 0, dual_write -> split: 0",
    "strangler demo: zero divergence, no lost writes",
]


def demo_env(var_dir: Path, ports: list[int]) -> dict[str, str]:
    env = {**os.environ, "STRANGLER_VAR_DIR": str(var_dir)}
    env.update(zip(PORT_VARIABLES, map(str, ports), strict=True))
    for name in ("SECRET_KEY", "STRANGLER_REDIS_URL", "STRANGLER_SHADOW_STORE_URL", "COLUMNS"):
        env.pop(name, None)  # the demo needs no server and makes its own secrets
    return env


def run_demo(env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "migration_plans.control.cli", "demo"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line or environment mentions ``text``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            blob = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in blob:
            pids.append(int(entry.name))
    return pids


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_walks_catalog_to_split_with_zero_divergence(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    ports = [free_port() for _ in PORT_VARIABLES]
    result = run_demo(demo_env(var_dir, ports), timeout=540)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    missing = [line for line in STORY if line not in output]
    assert not missing, f"missing from the story: {missing}\n{output[-8000:]}"
    # Both transitions are live cut-overs: nothing failed, nothing restarted.
    assert output.count("0 requests failed meanwhile, no process restarted") == 2, output[-8000:]
    reports = var_dir / "demo" / "reports"
    for name in ("reconcile-divergent", "reconcile-clean", "final-parity", "shadow"):
        assert (reports / f"{name}.json").stat().st_size > 0
        assert (reports / f"{name}.html").read_text().lstrip().lower().startswith("<!doctype html")
    final = json.loads((reports / "final-parity.json").read_text())
    assert final["verdict"] == "clean"
    divergent = json.loads((reports / "reconcile-divergent.json").read_text())
    assert divergent["verdict"] == "divergent"
    assert str(reports) in output  # it says where the reports are
    assert processes_mentioning(str(var_dir)) == []
    assert all(port_free(port) for port in ports)  # nothing is left listening


@pytest.mark.e2e
def test_demo_refuses_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        ports = [port, *(free_port() for _ in PORT_VARIABLES[1:])]
        result = run_demo(demo_env(tmp_path, ports), timeout=60)
    assert result.returncode == 1
    assert f"proxy {port}" in result.stdout
    assert "already in use" in result.stdout
    assert processes_mentioning(str(tmp_path)) == []
