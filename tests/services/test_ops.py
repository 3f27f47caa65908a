"""Operations: health, Prometheus metrics, X-Request-ID in responses, logs and outbox events;
settings from the environment."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from extracted_services.catalog.config import Settings as CatalogSettings
from extracted_services.catalog.main import create_app
from extracted_services.cli import app as service_cli
from extracted_services.common.settings import ConfigurationError
from extracted_services.inventory.config import Settings as InventorySettings
from migration_plans.control.processes import free_port
from migration_plans.core.logs import JsonFormatter
from migration_plans.core.phase import Phase
from tests.services.conftest import identity_headers
from tests.services.test_catalog_api import outbox_events

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@SQLITE_ONLY
def test_health_metrics_and_request_ids(service_app, caplog):
    client, _ = service_app("inventory", "split")
    health = client.get("/healthz")
    assert health.json() == {"status": "ok", "service": "inventory", "phase": "split", "epoch": 0}
    generated = health.headers["X-Request-ID"]
    assert len(generated) == 32

    with caplog.at_level(logging.INFO, logger="extracted_services.access"):
        listed = client.get("/api/v1/warehouses/", headers={"X-Request-ID": "proxy-abc.1"})
    assert listed.headers["X-Request-ID"] == "proxy-abc.1"
    line = json.loads(JsonFormatter().format(caplog.records[-1]))
    assert line["request_id"] == "proxy-abc.1" and line["status"] == 200
    assert line["path"] == "/api/v1/warehouses/" and line["service"] == "inventory"
    bogus = client.get("/healthz", headers={"X-Request-ID": "no spaces allowed"})
    assert bogus.headers["X-Request-ID"] != "no spaces allowed"

    assert client.get("/readyz").json()["status"] == "ready"
    metrics = client.get("/metrics").text
    assert 'strangler_service_phase{phase="split",service="inventory"} 1.0' in metrics
    assert (
        'strangler_service_http_requests_total{method="GET",route="/api/v1/warehouses/"'
        in metrics.replace('service="inventory",', "")
    )


def test_settings_prefer_the_context_variable_over_the_shared_one(monkeypatch):
    monkeypatch.setenv("STRANGLER_PHASE", "dual_write")
    monkeypatch.setenv("STRANGLER_IDENTITY_KEY", "shared-key")
    monkeypatch.setenv("INVENTORY_PHASE", "split")
    monkeypatch.setenv("CATALOG_DATABASE_URL", "sqlite:///catalog.db")
    monkeypatch.setenv("CATALOG_REVERSE_SYNC", "false")
    catalog, inventory = CatalogSettings(), InventorySettings()
    assert catalog.phase is Phase.DUAL_WRITE and inventory.phase is Phase.SPLIT
    assert catalog.identity_secret == b"shared-key"
    assert catalog.database_url == "sqlite:///catalog.db" and inventory.database_url == ""
    assert catalog.reverse_sync is False and inventory.reverse_sync is True


def test_settings_refuse_a_missing_identity_key_unless_told_it_is_development(monkeypatch):
    monkeypatch.delenv("STRANGLER_IDENTITY_KEY", raising=False)
    settings = CatalogSettings(phase="split", database_url="sqlite:///x.db")
    with pytest.raises(ConfigurationError, match="CATALOG_IDENTITY_KEY"):
        settings.check_runnable()
    shared = CatalogSettings(phase="shared", identity_key="k")
    with pytest.raises(ConfigurationError, match="CATALOG_MONOLITH_DATABASE_URL"):
        shared.check_runnable()
    dev = CatalogSettings(phase="split", database_url="sqlite:///x.db", allow_dev_identity_key=True)
    dev.check_runnable()


@SQLITE_ONLY
def test_outbox_events_carry_the_request_id(service_app):
    client, stack = service_app("catalog", "dual_write")
    response = client.post(
        "/api/v1/categories/",
        json={"name": "Tools", "slug": "tools"},
        headers={**identity_headers(), "X-Request-ID": "req-77"},
    )
    assert response.headers["X-Request-ID"] == "req-77"
    assert [event["request_id"] for event in outbox_events(stack.service_url)] == ["req-77"]


def test_serve_refuses_to_start_without_an_identity_key(monkeypatch):
    for name in (
        "CATALOG_IDENTITY_KEY",
        "STRANGLER_IDENTITY_KEY",
        "CATALOG_ALLOW_DEV_IDENTITY_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CATALOG_PHASE", "split")
    monkeypatch.setenv("CATALOG_DATABASE_URL", "sqlite:///unused.sqlite3")
    result = CliRunner().invoke(service_cli, ["serve", "catalog", "--port", "1"])
    assert result.exit_code == 2
    assert "CATALOG_IDENTITY_KEY" in result.output


def test_readiness_fails_with_503_when_the_database_is_unreachable():
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    app = create_app(CatalogSettings(phase="split", database_url=url, identity_key="k"))
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"code": "unavailable", "detail": "catalog: database unreachable"}
