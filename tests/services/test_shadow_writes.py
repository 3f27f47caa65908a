"""Shadow copies never write (issue #17, item 4), on SQLite and PostgreSQL.

A mirrored POST (``X-Strangler-Shadow: 1``) to a candidate declared side-effect free
used to create a real category and an outbox event the relay would apply back. Now a
service refuses it (403 ``shadow_write_refused``) or, in ``sandbox`` mode, answers it
from a transaction it rolls back: no row, no outbox event either way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select, text

from extracted_services.common.migrations import upgrade
from migration_plans.control.processes import ManagedProcess, free_port, uvicorn_argv
from migration_plans.core.database import sqlalchemy_url
from migration_plans.core.outbox import outbox_table
from tests.services.conftest import (
    IDENTITY_KEY,
    REPO_ROOT,
    Stack,
    django_migrate,
    identity_headers,
)

ServiceApp = Callable[..., tuple[TestClient, Stack]]

SHADOW = {"X-Strangler-Shadow": "1"}
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


def test_a_service_process_in_sandbox_mode_keeps_a_mirrored_post_out(tmp_path: Path) -> None:
    """Over real sockets: the catalog service (uvicorn, dual_write, SQLite) in sandbox mode."""
    monolith, service = tmp_path / "monolith.sqlite3", tmp_path / "catalog.sqlite3"
    django_migrate(f"sqlite:///{monolith}")
    upgrade("catalog", f"sqlite:///{service}")
    port = free_port()
    env = {
        "CATALOG_DATABASE_URL": f"sqlite:///{service}",
        "CATALOG_MONOLITH_DATABASE_URL": f"sqlite:///{monolith}",
        "CATALOG_PHASE": "dual_write",
        "CATALOG_IDENTITY_KEY": IDENTITY_KEY,
        "CATALOG_SHADOW_WRITES": "sandbox",
    }
    argv = uvicorn_argv("extracted_services.catalog.main:create_app", port, factory=True)
    url = f"http://127.0.0.1:{port}"
    process = ManagedProcess.start(
        argv, name="catalog-sandbox", health_url=f"{url}/healthz", env=env, cwd=REPO_ROOT,
        log_dir=tmp_path, timeout=60,
    )  # fmt: skip
    with process, httpx.Client(base_url=url) as client:
        answer = client.post(
            "/api/v1/categories/", json=LAMPS, headers={**identity_headers(), **SHADOW}
        )
        assert answer.status_code == 201, answer.text
        assert client.get("/api/v1/categories/").json()["count"] == 0
    assert rows(f"sqlite:///{service}") == (0, 0)
