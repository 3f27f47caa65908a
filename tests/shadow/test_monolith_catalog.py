"""End to end with the real monolith as primary and the real catalog service (shared phase).

The monolith's SQLite database is migrated and seeded once; the catalog service reads
it read-only (shared phase). A second catalog process carries planted differences
(tests.shadow.planted_catalog). A mitmdump capture taken in front of the monolith is
replayed against monolith and service; the mirror engine shadows live calls.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from migration_plans.control.processes import ManagedProcess, free_port, uvicorn_argv
from strangler_proxy.shadow._captures import read_capture
from strangler_proxy.shadow._replay import replay
from strangler_proxy.shadow.engine import MirrorEngine, MirrorMetrics, ShadowRoute, Submitted
from strangler_proxy.shadow.exchange import CapturedRequest, CapturedResponse
from strangler_proxy.shadow.store import MemoryShadowStore, RedisShadowStore

from .conftest import REPO_ROOT
from .test_replay import capture_with_mitmdump

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.redis]

READS = [
    "/api/v1/products/",
    "/api/v1/products/1/",
    "/api/v1/products/7/",
    "/api/v1/products/?ordering=-price",
    "/api/v1/categories/",
    "/api/v1/categories/2/",
]


@dataclass(frozen=True)
class Stack:
    monolith: str
    catalog: str
    planted: str


def manage(database_url: str, *argv: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "DEBUG": "true"}
    result = subprocess.run(
        [sys.executable, "-m", "legacy_monolith.manage", *argv],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def serve(argv: list[str], port: int, name: str, env: dict[str, str], logs: Path) -> ManagedProcess:
    return ManagedProcess.start(
        argv, name=name, health_url=f"http://127.0.0.1:{port}/healthz",
        env=env, cwd=REPO_ROOT, log_dir=logs, timeout=60,
    )  # fmt: skip


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("monolith-shadow")
    database = f"sqlite:///{root / 'monolith.sqlite3'}"
    manage(database, "migrate", "--no-input")
    manage(database, "seed", "--products=20", "--customers=1", "--orders=0", "--seed=7")
    ports = [free_port() for _ in range(3)]
    mono_env = {
        "DATABASE_URL": database,
        "DEBUG": "true",
        "DJANGO_SETTINGS_MODULE": "legacy_monolith.settings",
    }
    service_env = {
        "CATALOG_MONOLITH_DATABASE_URL": database,
        "CATALOG_PHASE": "shared",
        "CATALOG_IDENTITY_KEY": "shadow-tests-identity-key",
    }
    started: list[ManagedProcess] = []
    try:
        started.append(
            serve(
                uvicorn_argv("legacy_monolith.asgi:application", ports[0]),
                ports[0],
                "monolith",
                mono_env,
                root,
            )
        )
        started.append(
            serve(
                uvicorn_argv("extracted_services.catalog.main:create_app", ports[1], factory=True),
                ports[1],
                "catalog",
                service_env,
                root,
            )
        )
        started.append(
            serve(
                uvicorn_argv("tests.shadow.planted_catalog:create_app", ports[2], factory=True),
                ports[2],
                "planted",
                service_env,
                root,
            )
        )
        yield Stack(*(f"http://127.0.0.1:{port}" for port in ports))
    finally:
        for process in reversed(started):
            process.stop()


def test_mitmdump_capture_of_the_monolith_replays_clean_against_the_catalog_service(
    stack: Stack, tmp_path: Path
) -> None:
    capture = tmp_path / "monolith.flows"
    port = free_port()
    argv_traffic = [("GET", path) for path in READS]
    capture_with_mitmdump(
        stack.monolith,
        capture,
        tmp_path,
        traffic=[*argv_traffic, ("POST", "/api/v1/categories/")],
        port=port,
    )
    exchanges = list(read_capture(capture))[1:]  # the first is mitmdump's health check
    assert [e.request.path for e in exchanges] == [*READS, "/api/v1/categories/"]

    store = MemoryShadowStore()
    summary = asyncio.run(
        replay(exchanges, primary=stack.monolith, candidate=stack.catalog, store=store)
    )
    assert summary.outcomes["skipped_writes"] == 1
    report = {route: store.counts(route=route) for route in store.routes()}
    mismatched = {route: store.top_fields(route) for route, c in report.items() if c.mismatched}
    assert mismatched == {}
    assert store.match_rate(context="replay") == (1.0, len(READS))


def test_planted_differences_in_the_service_are_found_with_their_paths(
    stack: Stack, store: RedisShadowStore
) -> None:
    table = {
        "product-detail": ShadowRoute("product-detail", stack.planted, context="catalog"),
        "product-list": ShadowRoute("product-list", stack.planted, context="catalog"),
        "category-list": ShadowRoute("category-list", stack.planted, context="catalog"),
    }
    calls = [
        ("product-detail", "/api/v1/products/3/"),
        ("product-detail", "/api/v1/products/4/"),
        ("product-list", "/api/v1/products/"),
        ("category-list", "/api/v1/categories/"),
    ]

    async def run() -> None:
        engine = MirrorEngine(store=store, concurrency=2, metrics=MirrorMetrics(None))
        engine.start()
        async with httpx.AsyncClient(base_url=stack.monolith) as client:
            for route, path in calls:
                response = await client.get(path)
                primary = CapturedResponse(
                    response.status_code, tuple(response.headers.items()), response.content
                )
                assert (
                    engine.submit(table[route], CapturedRequest("GET", path), primary)
                    is Submitted.QUEUED
                )
        await engine.drain(30)
        await engine.close()

    asyncio.run(run())
    assert dict(store.top_fields("product-detail")) == {"root['name']": 2, "root['title']": 2}
    assert store.counts(route="product-list").matched == 1
    fields = {path for path, _ in store.top_fields("category-list", limit=100)}
    assert "root['results'][0]['id']" in fields and "root['results'][0]['slug']" in fields
    assert store.match_rate(context="catalog") == (0.25, 4)
