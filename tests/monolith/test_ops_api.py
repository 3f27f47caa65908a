"""Health, request ids, metrics, OpenAPI schema and the error format of unknown URLs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

from migration_plans.control.processes import ManagedProcess, free_port, wait_until

from .conftest import REPO_ROOT, Monolith, MonolithDatabases, monolith_env


def test_healthz(anon: httpx.Client) -> None:
    response = anon.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_request_id_is_honoured_or_generated(anon: httpx.Client) -> None:
    assert (
        anon.get("/healthz", headers={"X-Request-ID": "req-123"}).headers["X-Request-ID"]
        == "req-123"
    )
    generated = anon.get("/api/v1/products/").headers["X-Request-ID"]
    assert len(generated) == 32
    assert (
        anon.get("/healthz", headers={"X-Request-ID": "bad id"}).headers["X-Request-ID"] != "bad id"
    )


def test_metrics(anon: httpx.Client) -> None:
    anon.get("/api/v1/categories/")
    text = anon.get("/metrics").text
    assert "monolith_http_requests_total" in text
    assert 'route="api/v1/categories/"' in text


def test_openapi_schema(anon: httpx.Client) -> None:
    response = anon.get("/api/v1/schema/", params={"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in [
        "/api/v1/products/",
        "/api/v1/stock/reserve/",
        "/api/v1/orders/",
        "/api/v1/auth/whoami/",
    ]:
        assert path in paths


def test_unknown_url_uses_the_error_format(anon: httpx.Client) -> None:
    response = anon.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.content == b'{"code":"not_found","detail":"Not found."}'


def test_method_not_allowed(anon: httpx.Client, staff: httpx.Client) -> None:
    response = staff.put("/api/v1/orders/1/", json={})
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_json_logs_carry_the_request_id(anon: httpx.Client, monolith: Monolith) -> None:
    anon.get("/api/v1/categories/", headers={"X-Request-ID": "trace-me-42"})

    def logged() -> list[dict[str, object]]:
        lines = monolith.process.log_path.read_text().splitlines()
        records = [json.loads(line) for line in lines if line.startswith("{")]
        return [r for r in records if r.get("request_id") == "trace-me-42"]

    wait_until(lambda: bool(logged()), timeout=10, what="the access log line")
    record = logged()[0]
    assert (record["path"], record["status"], record["level"]) == (
        "/api/v1/categories/",
        200,
        "info",
    )


@pytest.mark.e2e
def test_serves_under_gunicorn(
    tmp_path: Path, request: pytest.FixtureRequest, monolith_databases: MonolithDatabases
) -> None:
    database_url = monolith_databases.fresh(request, "sqlite")
    port = free_port()
    argv = [sys.executable, "-m", "legacy_monolith.cli", "serve", "--port", str(port)]
    argv += ["--server", "gunicorn", "--workers", "1", "--threads", "4"]
    with (
        ManagedProcess.start(
            argv,
            name="monolith-gunicorn",
            health_url=f"http://127.0.0.1:{port}/healthz",
            env=monolith_env(database_url),
            cwd=REPO_ROOT,
            log_dir=tmp_path,
            timeout=60,
        ),
        httpx.Client(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        for _ in range(3):  # one kept-alive connection, persistent DB connection
            response = client.get("/api/v1/products/", params={"page_size": 1})
            assert response.status_code == 200
            assert response.headers["X-Request-ID"]
