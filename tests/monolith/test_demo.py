"""`strangler demo` end to end: migrates, seeds, serves, calls the API, stops, leaves nothing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from migration_plans.processes import free_port

from .conftest import REPO_ROOT

pytestmark = pytest.mark.e2e


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


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    port, var_dir = free_port(), tmp_path / "var"
    env = {**os.environ, "STRANGLER_DEMO_PORT": str(port), "STRANGLER_VAR_DIR": str(var_dir)}
    env.pop("SECRET_KEY", None)
    result = subprocess.run(
        [sys.executable, "-c", "from migration_plans.cli import main; main()", "demo"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "> POST /api/v1/orders/" in result.stdout
    assert '"status": "paid"' in result.stdout
    assert '"code": "payment_failed"' in result.stdout
    assert "monolith stopped cleanly." in result.stdout
    assert (var_dir / "monolith.sqlite3").exists()
    assert processes_mentioning(str(var_dir)) == []
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))  # nothing is left listening


def test_demo_refuses_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "STRANGLER_DEMO_PORT": str(port), "STRANGLER_VAR_DIR": str(tmp_path)}
        result = subprocess.run(
            [sys.executable, "-c", "from migration_plans.cli import main; main()", "demo"],
            env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"port {port} is already in use" in result.stdout
