"""A running service follows the published phase: it switches between requests, never
inside one, acknowledges every epoch, and keeps its inline relay in step (in-process,
SQLite, a temporary control database)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, func, select, text
from typer.testing import CliRunner

from extracted_services.catalog.config import Settings as CatalogSettings
from extracted_services.catalog.deps import ServingDep, SessionDep, ViewsDep
from extracted_services.catalog.main import create_app
from extracted_services.cli import app as service_cli
from extracted_services.common.live import LivePhase
from extracted_services.common.serving import Serving
from extracted_services.common.settings import ConfigurationError
from migration_plans.control.processes import wait_until
from migration_plans.core.database import engine as make_engine
from migration_plans.core.database import sqlalchemy_url
from migration_plans.core.live_phase import PhaseState, publish
from migration_plans.core.logs import JsonFormatter
from migration_plans.core.phase import Phase
from migration_plans.core.replicas import Role, list_replicas
from tests.services.conftest import IDENTITY_KEY, Databases, identity_headers
from tests.services.seed import seed_monolith
from tests.services.test_catalog_api import outbox_events

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

DEADLINE = 10.0
PINNING = ("STRANGLER_PHASE", "CATALOG_PHASE", "STRANGLER_LIVE_PHASE", "CATALOG_LIVE_PHASE")


@pytest.fixture
def control(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """A fresh control database the services follow; no phase pinned by the environment."""
    url = f"sqlite:///{tmp_path / 'control.sqlite3'}"
    monkeypatch.setenv("STRANGLER_CONTROL_DB_URL", url)
    for name in PINNING:
        monkeypatch.delenv(name, raising=False)
    engine = make_engine(url)
    yield engine
    engine.dispose()


@dataclass
class Hold:
    """A request that waits in its handler until released (a request in flight)."""

    entered: threading.Event
    release: threading.Event

    def router(self) -> APIRouter:
        router = APIRouter()

        @router.get("/test/hold")
        def held(serving: ServingDep, session: SessionDep, views: ViewsDep) -> dict[str, Any]:
            self.entered.set()
            assert self.release.wait(DEADLINE)
            table = views["categories"].table
            count = session.scalar(select(func.count()).select_from(table))
            return {"phase": serving.phase.value, "epoch": serving.epoch, "categories": count}

        return router


@dataclass
class Live:
    """An in-process catalog that follows ``control``."""

    client: TestClient
    app: FastAPI
    monolith_url: str
    service_url: str
    hold: Hold

    @property
    def serving(self) -> Serving:
        current: Serving = self.app.state.serving
        return current

    @property
    def live(self) -> LivePhase:
        live: LivePhase = self.app.state.live
        return live

    def wait_for(self, state: PhaseState) -> None:
        wait_until(
            lambda: self.serving.epoch == state.epoch,
            timeout=DEADLINE,
            what=f"the service to serve epoch {state.epoch}",
        )


@pytest.fixture
def live_catalog(databases: Databases, control: Engine) -> Iterator[Callable[..., Live]]:
    """Factory: a started catalog app with both databases, its phase not pinned."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> Live:
        monolith, service = databases.monolith(), databases.service("catalog")
        settings = CatalogSettings(
            database_url=service,
            monolith_database_url=monolith,
            identity_key=IDENTITY_KEY,
            **overrides,
        )
        app = create_app(settings)
        hold = Hold(threading.Event(), threading.Event())
        app.include_router(hold.router())
        client = TestClient(app, base_url="http://testserver")
        client.__enter__()
        clients.append(client)
        return Live(client, app, monolith, service, hold)

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def acknowledged(control: Engine) -> int | None:
    """The epoch the catalog service replica acknowledged (None: not registered)."""
    rows = [r for r in list_replicas(control, context="catalog") if r.role is Role.SERVICE]
    assert len(rows) <= 1
    return rows[0].epoch("catalog") if rows else None


def wait_acknowledged(control: Engine, state: PhaseState) -> None:
    wait_until(
        lambda: acknowledged(control) == state.epoch,
        timeout=DEADLINE,
        what=f"the replica to acknowledge epoch {state.epoch}",
    )


def create_category(client: TestClient, slug: str) -> Any:
    body = {"name": slug.title(), "slug": slug}
    return client.post("/api/v1/categories/", json=body, headers=identity_headers())


def count_rows(url: str, table: str) -> int:
    engine = create_engine(sqlalchemy_url(url))
    with engine.connect() as conn:
        value = int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    engine.dispose()
    return value


@SQLITE_ONLY
def test_the_plan_phase_serves_as_epoch_0_until_a_publication_switches_it(
    live_catalog, control, caplog
):
    service = live_catalog()
    health = service.client.get("/healthz").json()
    assert health == {"status": "ok", "service": "catalog", "phase": "shared", "epoch": 0}
    assert acknowledged(control) == 0

    with caplog.at_level(logging.INFO, logger="extracted_services.phase"):
        state = publish(control, "catalog", Phase.DUAL_WRITE)
        service.wait_for(state)
        wait_acknowledged(control, state)

    assert service.client.get("/readyz").json() == {
        "status": "ready",
        "service": "catalog",
        "phase": "dual_write",
        "epoch": state.epoch,
    }
    switched = [r for r in caplog.records if getattr(r, "event", None) == "phase_switched"]
    line = json.loads(JsonFormatter().format(switched[-1]))
    assert {key: line[key] for key in ("event", "context", "from", "to", "epoch")} == {
        "event": "phase_switched",
        "context": "catalog",
        "from": "shared",
        "to": "dual_write",
        "epoch": state.epoch,
    }
    metrics = service.client.get("/metrics").text
    assert 'strangler_service_phase{phase="dual_write",service="catalog"} 1.0' in metrics
    assert 'strangler_service_phase{phase="shared",service="catalog"} 0.0' in metrics


@SQLITE_ONLY
def test_the_published_state_wins_over_the_plan_from_the_first_request(live_catalog, control):
    state = publish(control, "catalog", Phase.SPLIT)
    service = live_catalog()
    assert service.client.get("/healthz").json()["phase"] == "split"
    assert service.serving.epoch == state.epoch
    assert acknowledged(control) == state.epoch


@SQLITE_ONLY
def test_a_request_in_flight_across_a_switch_keeps_its_snapshot(live_catalog, control):
    service = live_catalog()
    seed_monolith(service.monolith_url, inventory=False)
    assert service.serving.phase is Phase.SHARED

    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(service.client.get, "/test/hold")
        assert service.hold.entered.wait(DEADLINE)
        state = publish(control, "catalog", Phase.DUAL_WRITE)
        service.wait_for(state)
        after = service.client.get("/api/v1/categories/").json()
        service.hold.release.set()
        held = in_flight.result(timeout=DEADLINE).json()

    # Started in shared: it finished on the monolith's read-only engine and tables.
    assert held == {"phase": "shared", "epoch": 0, "categories": 2}
    # Started after the switch: the service's own (empty, not backfilled) tables.
    assert after["count"] == 0


@SQLITE_ONLY
def test_writes_are_refused_in_shared_then_accepted_with_an_event_after_the_switch(
    live_catalog, control
):
    service = live_catalog()
    refused = create_category(service.client, "tools")
    assert refused.status_code == 409
    assert refused.json()["code"] == "phase_read_only"

    state = publish(control, "catalog", Phase.DUAL_WRITE)
    wait_acknowledged(control, state)
    created = create_category(service.client, "tools")
    assert created.status_code == 201, created.text
    events = outbox_events(service.service_url)
    assert [(e["origin"], e["operation"]) for e in events] == [("service", "insert")]


@SQLITE_ONLY
def test_split_without_reverse_sync_writes_no_event(live_catalog, control):
    state = publish(control, "catalog", Phase.SPLIT)
    service = live_catalog(reverse_sync=False)
    assert service.serving.sink is None
    assert create_category(service.client, "garden").status_code == 201
    assert outbox_events(service.service_url) == []

    back = publish(control, "catalog", Phase.DUAL_WRITE)
    wait_acknowledged(control, back)
    assert back.epoch == state.epoch + 1
    assert create_category(service.client, "tools").status_code == 201
    assert len(outbox_events(service.service_url)) == 1


@SQLITE_ONLY
def test_every_epoch_is_acknowledged_even_when_the_phase_stays(live_catalog, control):
    service = live_catalog()
    first = publish(control, "catalog", Phase.DUAL_WRITE)
    service.wait_for(first)
    engine_before = service.serving.engine

    fenced = publish(control, "catalog", Phase.DUAL_WRITE, fence_seconds=5)
    lifted = publish(control, "catalog", Phase.DUAL_WRITE)
    wait_acknowledged(control, lifted)
    assert fenced.epoch < lifted.epoch
    assert service.serving.phase is Phase.DUAL_WRITE
    assert service.serving.engine is engine_before
    assert service.client.get("/healthz").json()["epoch"] == lifted.epoch


@SQLITE_ONLY
def test_engines_are_built_once_and_kept_across_switches(live_catalog, control):
    service = live_catalog()
    monolith_engine = service.serving.engine
    for phase in (Phase.DUAL_WRITE, Phase.SPLIT, Phase.DUAL_WRITE):
        service.wait_for(publish(control, "catalog", phase))
    service_engine = service.serving.engine
    service.wait_for(publish(control, "catalog", Phase.SHARED))
    assert service.serving.engine is monolith_engine
    assert service_engine is not monolith_engine
    assert service.client.get("/readyz").json()["phase"] == "shared"


@SQLITE_ONLY
def test_the_inline_relay_runs_exactly_while_the_phase_has_an_outbox_sink(live_catalog, control):
    service = live_catalog(inline_relay=True, reverse_sync=False)
    inline = service.live.inline
    assert inline.running is None  # shared: no sink

    service.wait_for(publish(control, "catalog", Phase.DUAL_WRITE))
    first = inline.running
    assert first is not None and first.thread.is_alive()
    assert create_category(service.client, "tools").status_code == 201
    wait_until(
        lambda: count_rows(service.monolith_url, "catalog_category") == 1,
        timeout=DEADLINE,
        what="the inline relay to apply the write to the monolith",
    )

    service.wait_for(publish(control, "catalog", Phase.SPLIT))
    assert inline.running is None and not first.thread.is_alive()

    service.wait_for(publish(control, "catalog", Phase.DUAL_WRITE))
    again = inline.running
    assert again is not None and again is not first and again.thread.is_alive()
    assert create_category(service.client, "garden").status_code == 201
    wait_until(
        lambda: count_rows(service.monolith_url, "catalog_category") == 2,
        timeout=DEADLINE,
        what="the restarted inline relay to apply the write",
    )


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("variable", "value"), [("CATALOG_PHASE", "shared"), ("STRANGLER_LIVE_PHASE", "off")]
)
def test_a_pinned_phase_or_live_phase_off_is_not_followed(
    databases, control, monkeypatch, variable, value
):
    publish(control, "catalog", Phase.SPLIT)
    monkeypatch.setenv(variable, value)
    settings = CatalogSettings(
        database_url=databases.service("catalog"),
        monolith_database_url=databases.monolith(),
        identity_key=IDENTITY_KEY,
    )
    assert not settings.follows_live_phase
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").json()["phase"] == "shared"
    assert acknowledged(control) is None


def test_following_needs_both_database_urls(control):
    settings = CatalogSettings(identity_key="k")
    assert settings.follows_live_phase
    with pytest.raises(ConfigurationError) as raised:
        settings.check_runnable()
    message = str(raised.value)
    assert "CATALOG_DATABASE_URL and CATALOG_MONOLITH_DATABASE_URL" in message
    assert "may switch to any phase" in message
    only_service = CatalogSettings(identity_key="k", database_url="sqlite:///x.db").problems()
    assert len(only_service) == 1
    assert only_service[0].startswith("CATALOG_MONOLITH_DATABASE_URL (or STRANGLER_MONOLITH")
    pinned = CatalogSettings(identity_key="k", phase="split", database_url="sqlite:///x.db")
    pinned.check_runnable()


def test_serve_advertises_its_listening_url(monkeypatch, control):
    monkeypatch.setenv("CATALOG_DATABASE_URL", "sqlite:///unused.sqlite3")
    monkeypatch.setenv("CATALOG_MONOLITH_DATABASE_URL", "sqlite:///unused-monolith.sqlite3")
    monkeypatch.setenv("CATALOG_IDENTITY_KEY", "k")
    monkeypatch.setenv("CATALOG_ADVERTISE_URL", "")  # restored after the test
    ran: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: ran.append(options))
    runner = CliRunner()

    result = runner.invoke(service_cli, ["serve", "catalog", "--host", "0.0.0.0", "--port", "9"])
    assert result.exit_code == 0, result.output
    assert ran[-1]["port"] == 9
    assert CatalogSettings().advertise_url == "http://0.0.0.0:9"

    argv = ["serve", "catalog", "--advertise-url", "http://catalog-1.internal:8101"]
    assert runner.invoke(service_cli, argv).exit_code == 0
    assert CatalogSettings().advertise_url == "http://catalog-1.internal:8101"
