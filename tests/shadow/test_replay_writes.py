"""A mitmdump capture of list, detail and write traffic replays at 100% (issue #17, item 3).

The monolith (real process, seeded SQLite) is captured through a real ``mitmdump`` in
reverse mode: paginated lists, details, POST and PATCH with a DRF token. The capture
is then replayed against the monolith and the catalog service (dual_write, writes
allowed) running on two copies of the same data taken before the capture: Host is
kept so ``next``/``previous`` links compare, and the identity header is signed with
the service's key so its writes pass. Every exchange must match.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from dualwrite.backfill import Backfill
from dualwrite.config import RelaySettings
from extracted_services.common.migrations import upgrade
from migration_plans.control.processes import ManagedProcess, free_port, uvicorn_argv
from migration_plans.core.phase import Phase
from strangler_proxy.shadow._captures import read_capture
from strangler_proxy.shadow._compare import CompareRules
from strangler_proxy.shadow._replay import ReplayOptions, replay
from strangler_proxy.shadow.store import MemoryShadowStore

from .conftest import MITMDUMP, REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

IDENTITY_KEY = "replay-writes-identity-key"
# Timestamps set by the server at write time differ by the milliseconds between the
# two sides: the route table's ``shadow.compare.ignore_paths`` of a real deployment.
WRITE_TIMES = CompareRules(
    ignore_paths=(
        "root['created_at']",
        "root['updated_at']",
        "root['results'][*]['created_at']",
        "root['results'][*]['updated_at']",
    )
)


def manage(database_url: str, *argv: str, **env: str) -> str:
    environ = {**os.environ, "DATABASE_URL": database_url, "DEBUG": "true", **env}
    result = subprocess.run(
        [sys.executable, "-m", "legacy_monolith.manage", *argv],
        cwd=REPO_ROOT, env=environ, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def monolith(database: Path, logs: Path, name: str) -> tuple[ManagedProcess, str]:
    port = free_port()
    env = {"DATABASE_URL": f"sqlite:///{database}", "DEBUG": "true"}
    process = ManagedProcess.start(
        uvicorn_argv("legacy_monolith.asgi:application", port), name=name,
        health_url=f"http://127.0.0.1:{port}/healthz", env=env, cwd=REPO_ROOT, log_dir=logs,
        timeout=60,
    )  # fmt: skip
    return process, f"http://127.0.0.1:{port}"


def catalog_service(service_db: Path, monolith_db: Path, logs: Path) -> tuple[ManagedProcess, str]:
    port = free_port()
    env = {
        "CATALOG_DATABASE_URL": f"sqlite:///{service_db}",
        "CATALOG_MONOLITH_DATABASE_URL": f"sqlite:///{monolith_db}",
        "CATALOG_PHASE": "dual_write",
        "CATALOG_IDENTITY_KEY": IDENTITY_KEY,
        "CATALOG_INLINE_RELAY": "false",
    }
    process = ManagedProcess.start(
        uvicorn_argv("extracted_services.catalog.main:create_app", port, factory=True),
        name="catalog", health_url=f"http://127.0.0.1:{port}/healthz", env=env, cwd=REPO_ROOT,
        log_dir=logs, timeout=60,
    )  # fmt: skip
    return process, f"http://127.0.0.1:{port}"


# One Django start-up for the seed, the staff user and its token (each `manage` costs one).
PREPARE = """
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.authtoken.models import Token
call_command("seed", products=25, customers=1, orders=0, seed=7, verbosity=0)
staff = get_user_model().objects.create_superuser("staff", "s@example.com", "staff-password")
print(Token.objects.create(user=staff).key)
"""


def seeded_monolith(root: Path) -> tuple[Path, str]:
    """A migrated, seeded monolith database (25 products: two pages) and a staff token."""
    database = root / "captured.sqlite3"
    url = f"sqlite:///{database}"
    manage(url, "migrate", "--no-input")
    token = manage(url, "shell", "-c", PREPARE).split()[-1]
    return database, token


def record(upstream: str, target: Path, logs: Path, token: str) -> None:
    """Send list, detail and write traffic through mitmdump (reverse mode) to ``upstream``."""
    port = free_port()
    argv = [
        str(MITMDUMP), "--mode", f"reverse:{upstream}", "--listen-host", "127.0.0.1",
        "--listen-port", str(port), "-w", str(target), "--set", f"confdir={logs / 'mitm'}", "-q",
    ]  # fmt: skip
    auth = {"Authorization": f"Token {token}"}
    with (
        ManagedProcess.start(
            argv,
            name="mitmdump",
            health_url=f"http://127.0.0.1:{port}/healthz",
            cwd=REPO_ROOT,
            log_dir=logs,
            timeout=60,
        ),  # fmt: skip
        httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth) as client,
    ):

        def send(method: str, path: str, body: Any = None) -> Any:
            response = client.request(method, path, json=body)
            assert response.status_code < 300, (method, path, response.text)
            return response.json()

        page = send("GET", "/api/v1/products/")
        assert page["next"], page  # paginated: the links are what must compare
        send("GET", "/api/v1/products/?page=2")
        send("GET", "/api/v1/products/3/")
        send("GET", "/api/v1/categories/")
        category = send(
            "POST", "/api/v1/categories/", {"name": "Lamps", "slug": "lamps", "description": ""}
        )
        send("PATCH", f"/api/v1/categories/{category['id']}/", {"description": "Light"})
        send("GET", f"/api/v1/categories/{category['id']}/")
        product = send(
            "POST",
            "/api/v1/products/",
            {
                "sku": "LAMP-1", "name": "Desk lamp", "description": "", "price": "19.90",
                "is_active": True, "category": category["id"],
            },
        )  # fmt: skip
        send("PATCH", f"/api/v1/products/{product['id']}/", {"price": "17.50"})
        send("GET", "/api/v1/products/?page=2")
        send("GET", f"/api/v1/products/{product['id']}/")


@pytest.fixture
def copies(tmp_path: Path) -> Iterator[tuple[Path, Path, str, str]]:
    """The capture (taken against one copy) and, running, the monolith and the catalog
    service (dual_write) on two other copies of the same data taken before it."""
    database, token = seeded_monolith(tmp_path)
    primary_db, relay_db = tmp_path / "primary.sqlite3", tmp_path / "relayed.sqlite3"
    shutil.copyfile(database, primary_db)
    shutil.copyfile(database, relay_db)
    service_db = tmp_path / "catalog.sqlite3"
    upgrade("catalog", f"sqlite:///{service_db}")
    settings = RelaySettings(
        context="catalog",
        monolith_url=f"sqlite:///{primary_db}",
        service_url=f"sqlite:///{service_db}",
        phase=Phase.DUAL_WRITE,
    )
    backfill = Backfill(settings, id_headroom=0)  # the same ids on both copies
    try:
        assert backfill.run(progress=False).finished
    finally:
        backfill.close()
    with ThreadPoolExecutor(3) as pool:  # three start-ups at once: the test waits less
        starting = [
            pool.submit(monolith, database, tmp_path, "monolith-captured"),
            pool.submit(monolith, primary_db, tmp_path, "monolith-primary"),
            pool.submit(catalog_service, service_db, relay_db, tmp_path),
        ]
    started = [future.result() for future in starting if future.exception() is None]
    try:
        assert len(started) == 3, [future.exception() for future in starting]
        (_, captured_url), (_, primary_url), (_, service_url) = started
        capture = tmp_path / "traffic.flows"
        record(captured_url, capture, tmp_path, token)
        yield capture, tmp_path, primary_url, service_url
    finally:
        for process, _ in reversed(started):
            process.stop()


def test_a_mitmdump_capture_with_writes_replays_at_100_percent(
    copies: tuple[Path, Path, str, str],
) -> None:
    capture, _, primary, candidate = copies
    exchanges = [e for e in read_capture(capture) if e.request.path != "/healthz"]
    assert [e.request.method for e in exchanges].count("PATCH") == 2

    store = MemoryShadowStore()
    options = ReplayOptions(
        include_writes=True, identity_key=IDENTITY_KEY.encode(), rules=WRITE_TIMES
    )
    summary = asyncio.run(
        replay(exchanges, primary=primary, candidate=candidate, store=store, options=options)
    )
    samples = {route: store.samples(route) for route in store.routes()}
    mismatched = {route: found for route, found in samples.items() if found}
    assert mismatched == {}, json.dumps(mismatched, indent=1)[:4000]
    assert summary.outcomes == {"matched": len(exchanges)}
    assert store.match_rate(context="replay") == (1.0, len(exchanges))
