"""A real ``strangler service serve catalog`` process on PostgreSQL switches shared ->
dual_write -> split -> dual_write as the control plane publishes, while a client keeps
reading and writing: no request fails, every epoch is acknowledged in the replica table."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from migration_plans.control.processes import ManagedProcess, free_port, wait_until
from migration_plans.core.database import engine as make_engine
from migration_plans.core.live_phase import PhaseState, publish, seed
from migration_plans.core.phase import Phase
from migration_plans.core.replicas import Replica, Role, list_replicas
from tests.services.conftest import IDENTITY_KEY, Databases, identity_headers
from tests.services.seed import seed_monolith
from tests.services.test_catalog_api import outbox_events

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STRANGLER = str(Path(sys.executable).with_name("strangler"))
DEADLINE = 30.0
PINNING = ("STRANGLER_PHASE", "CATALOG_PHASE", "STRANGLER_LIVE_PHASE", "CATALOG_LIVE_PHASE")
READS = ("/api/v1/categories/", "/api/v1/products/?page_size=5", "/healthz")


@dataclass
class Traffic:
    """A reader that runs from the start and a writer started once writes are accepted."""

    base: str
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    reads: int = 0
    writes: int = 0
    failures: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, loop: Callable[[httpx.Client], None]) -> None:
        def run() -> None:
            with httpx.Client(base_url=self.base, timeout=10) as client:
                while not self.stop.is_set():
                    try:
                        loop(client)
                    except httpx.HTTPError as exc:
                        self.failed(f"{type(exc).__name__}: {exc}")

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)

    def read(self, client: httpx.Client) -> None:
        for path in READS:
            response = client.get(path)
            if response.status_code != 200:
                self.failed(f"GET {path}: {response.status_code} {response.text[:200]}")
            with self.lock:
                self.reads += 1

    def write(self, client: httpx.Client) -> None:
        slug = f"c{self.writes}-{threading.get_ident()}"
        body = {"name": slug, "slug": slug}
        response = client.post("/api/v1/categories/", json=body, headers=identity_headers())
        if response.status_code != 201:
            self.failed(f"POST {slug}: {response.status_code} {response.text[:200]}")
        with self.lock:
            self.writes += 1

    def failed(self, what: str) -> None:
        with self.lock:
            self.failures.append(what)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=DEADLINE)

    def wait_for(self, kind: str, more: int) -> None:
        """Wait until ``more`` further requests of ``kind`` (reads, writes) were answered."""
        target = getattr(self, kind) + more
        wait_until(lambda: getattr(self, kind) >= target, timeout=DEADLINE, what=f"{target} {kind}")


def service_replica(control: Engine) -> Replica | None:
    rows = [r for r in list_replicas(control, context="catalog") if r.role is Role.SERVICE]
    return rows[0] if len(rows) == 1 else None


def wait_acknowledged(control: Engine, state: PhaseState) -> Replica:
    def acknowledged() -> bool:
        replica = service_replica(control)
        return replica is not None and replica.epoch("catalog") == state.epoch

    wait_until(acknowledged, timeout=DEADLINE, what=f"an ACK of epoch {state.epoch}")
    replica = service_replica(control)
    assert replica is not None
    return replica


def switched_lines(process: ManagedProcess) -> list[tuple[str, str, int]]:
    """The ``phase_switched`` JSON log lines of ``process`` as (from, to, epoch)."""
    found = []
    for line in process.log_path.read_text(errors="replace").splitlines():
        if '"phase_switched"' in line:
            record = json.loads(line)
            found.append((record["from"], record["to"], record["epoch"]))
    return found


@pytest.fixture
def control(pg_database: Callable[[str], str]) -> Iterator[tuple[str, Engine]]:
    url = pg_database("control")
    engine = make_engine(url)
    yield url, engine
    engine.dispose()


@pytest.mark.parametrize("backend", ["pg"], indirect=True)
def test_a_serving_catalog_follows_every_switch_without_a_failed_request(
    databases: Databases, processes, control, monkeypatch
):
    for name in PINNING:
        monkeypatch.delenv(name, raising=False)
    control_url, control_engine = control
    monolith_db, service_db = databases.monolith(), databases.service("catalog")
    seed_monolith(monolith_db, inventory=False)
    first = seed(control_engine, "catalog", Phase.SHARED)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "CATALOG_DATABASE_URL": service_db,
        "CATALOG_MONOLITH_DATABASE_URL": monolith_db,
        "CATALOG_IDENTITY_KEY": IDENTITY_KEY,
        "STRANGLER_CONTROL_DB_URL": control_url,
    }
    argv = [STRANGLER, "service", "serve", "catalog", "--port", str(port)]
    process = processes(argv, name="catalog", env=env, health_url=f"{base}/healthz", timeout=60)
    registered = wait_acknowledged(control_engine, first)
    assert registered.address == base

    traffic = Traffic(base)
    traffic.start(traffic.read)
    try:
        traffic.wait_for("reads", 30)  # shared: reads from the monolith
        states = [publish(control_engine, "catalog", Phase.DUAL_WRITE)]
        wait_acknowledged(control_engine, states[-1])
        traffic.start(traffic.write)
        traffic.wait_for("writes", 20)
        for phase in (Phase.SPLIT, Phase.DUAL_WRITE):
            states.append(publish(control_engine, "catalog", phase))
            wait_acknowledged(control_engine, states[-1])
            traffic.wait_for("writes", 20)
            traffic.wait_for("reads", 30)
    finally:
        traffic.finish()

    assert traffic.failures == [], "\n".join(traffic.failures[:20])
    assert traffic.reads > 0
    # dual_write and split (reverse sync on, as the plan says) record one event per write.
    assert len(outbox_events(service_db)) == traffic.writes
    ready = httpx.get(f"{base}/readyz", timeout=10).json()
    assert (ready["phase"], ready["epoch"]) == ("dual_write", states[-1].epoch)
    replica = service_replica(control_engine)
    assert replica is not None and replica.epoch("catalog") == states[-1].epoch
    assert switched_lines(process) == [
        ("shared", "dual_write", states[0].epoch),
        ("dual_write", "split", states[1].epoch),
        ("split", "dual_write", states[2].epoch),
    ]
