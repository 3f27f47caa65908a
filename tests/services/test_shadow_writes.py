"""Shadow copies never write (issue #17, item 4), on SQLite and PostgreSQL.

A mirrored POST (``X-Strangler-Shadow: 1``) to a candidate declared side-effect free
used to create a real category and an outbox event the relay would apply back. Now a
service refuses it (403 ``shadow_write_refused``) or, in ``sandbox`` mode, answers it
from a transaction it rolls back: no row, no outbox event either way.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select, text

from extracted_services.common.migrations import upgrade
from migration_plans.control.processes import ManagedProcess, free_port, uvicorn_argv
from migration_plans.core.database import sqlalchemy_url
from migration_plans.core.outbox import outbox_table
from strangler_proxy.shadow.engine import MirrorEngine, MirrorMetrics, ShadowRoute, Submitted
from strangler_proxy.shadow.exchange import CapturedRequest, CapturedResponse
from strangler_proxy.shadow.store import MemoryShadowStore
from tests.services.conftest import IDENTITY_KEY, REPO_ROOT, Stack, identity_headers

ServiceApp = Callable[..., tuple[TestClient, Stack]]

SHADOW = {"X-Strangler-Shadow": "1"}
JSON = (("content-type", "application/json"),)
LAMPS = {"name": "Lamps", "slug": "lamps", "description": ""}


def rows(service_url: str) -> tuple[int, int]:
    """(categories, outbox events) in the service's database."""
    engine = create_engine(sqlalchemy_url(service_url))
    try:
        with engine.connect() as conn:
            categories = conn.execute(text("SELECT count(*) FROM categories")).scalar_one()
            events = conn.execute(select(func.count()).select_from(outbox_table)).scalar_one()
    finally:
        engine.dispose()
    return int(categories), int(events)


def test_a_shadow_write_is_refused_by_default(service_app: ServiceApp) -> None:
    client, stack = service_app("catalog", "dual_write")
    answer = client.post(
        "/api/v1/categories/", json=LAMPS, headers={**identity_headers(), **SHADOW}
    )
    assert answer.status_code == 403, answer.text
    assert answer.json()["code"] == "shadow_write_refused"
    assert "CATALOG_SHADOW_WRITES=sandbox" in answer.json()["detail"]
    assert rows(stack.service_url) == (0, 0)
    assert client.get("/api/v1/categories/", headers=SHADOW).status_code == 200  # reads pass


def test_a_sandboxed_shadow_write_answers_and_leaves_nothing(service_app: ServiceApp) -> None:
    client, stack = service_app("catalog", "dual_write", shadow_writes="sandbox")
    auth = identity_headers()
    shadow = client.post("/api/v1/categories/", json=LAMPS, headers={**auth, **SHADOW})
    assert shadow.status_code == 201, shadow.text
    assert shadow.json()["name"] == "Lamps" and shadow.json()["id"] >= 1
    assert rows(stack.service_url) == (0, 0)
    assert client.get("/api/v1/categories/").json()["count"] == 0

    real = client.post("/api/v1/categories/", json=LAMPS, headers=auth)  # not a copy
    assert real.status_code == 201
    assert rows(stack.service_url) == (1, 1)
    key = real.json()["id"]
    patched = client.patch(
        f"/api/v1/categories/{key}/", json={"description": "x"}, headers={**auth, **SHADOW}
    )
    assert patched.status_code == 200 and patched.json()["description"] == "x"
    assert client.get(f"/api/v1/categories/{key}/").json()["description"] == ""
    deleted = client.delete(f"/api/v1/categories/{key}/", headers={**auth, **SHADOW})
    assert deleted.status_code == 204
    assert rows(stack.service_url) == (1, 1)


@pytest.mark.parametrize(
    ("mode", "outcome", "status"), [("sandbox", "matched", 201), ("refuse", "mismatched", 403)]
)
def test_the_proxy_mirror_engine_s_copy_of_a_post_writes_nothing(
    mode: str, outcome: str, status: int, tmp_path: Path, monolith_sqlite_template: Path
) -> None:
    """Over real sockets: the proxy's mirror engine copies a POST (side_effect_free route)
    to the catalog service (uvicorn, dual_write, SQLite) in each mode."""
    monolith, service = tmp_path / "monolith.sqlite3", tmp_path / "catalog.sqlite3"
    shutil.copyfile(monolith_sqlite_template, monolith)
    upgrade("catalog", f"sqlite:///{service}")
    port = free_port()
    env = {
        "CATALOG_DATABASE_URL": f"sqlite:///{service}",
        "CATALOG_MONOLITH_DATABASE_URL": f"sqlite:///{monolith}",
        "CATALOG_PHASE": "dual_write",
        "CATALOG_IDENTITY_KEY": IDENTITY_KEY,
        "CATALOG_SHADOW_WRITES": mode,
    }
    argv = uvicorn_argv("extracted_services.catalog.main:create_app", port, factory=True)
    url = f"http://127.0.0.1:{port}"
    route = ShadowRoute("category-create", url, context="catalog", side_effect_free=True)
    headers = (("content-type", "application/json"), *identity_headers().items())
    request = CapturedRequest("POST", "/api/v1/categories/", headers, json.dumps(LAMPS).encode())
    # What the primary (the monolith) answered for the same request on the same data.
    primary = CapturedResponse(201, JSON, json.dumps({"id": 1, **LAMPS}).encode())
    store = MemoryShadowStore()

    async def mirror() -> None:
        engine = MirrorEngine(store=store, concurrency=1, metrics=MirrorMetrics(None))
        engine.start()
        assert engine.submit(route, request, primary) is Submitted.QUEUED
        await engine.drain(30)
        await engine.close()

    process = ManagedProcess.start(
        argv, name=f"catalog-{mode}", health_url=f"{url}/healthz", env=env, cwd=REPO_ROOT,
        log_dir=tmp_path, timeout=60,
    )  # fmt: skip
    with process:
        asyncio.run(mirror())
        assert httpx.get(f"{url}/api/v1/categories/").json()["count"] == 0
    counts = store.counts(route="category-create")
    assert (counts.compared, getattr(counts, outcome)) == (1, 1)
    if outcome == "mismatched":
        differences = store.samples("category-create")[0]["differences"]
        statuses = [d["candidate"] for d in differences if d["path"] == "status"]
        assert statuses == [str(status)]
    assert rows(f"sqlite:///{service}") == (0, 0)
