"""Fixtures of the dual-write tests: a real monolith database migrated by Django (with the
capture app), a real catalog service database migrated by Alembic, relay, Celery worker
and Redis as real processes.

Migrations run once per session into template databases; each test gets fresh clones
(``CREATE DATABASE ... TEMPLATE``), so a test costs milliseconds, not a migrate.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import select, text

from dualwrite.capture import set_capture
from dualwrite.config import RelaySettings
from dualwrite.relay import Relay
from migration_plans.control.processes import ManagedProcess, free_port, wait_until
from migration_plans.core.outbox import outbox_table
from migration_plans.core.settings import mapping_for
from migration_plans.testing import PrivateRedis
from migration_plans.testing.databases import (
    create_database,
    drop_database,
    libpq_url,
    unique_name,
    with_database,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SETTINGS_MODULE = "tests.dualwrite.monolith_settings"


def django_env(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "DEBUG": "true",
        "MONOLITH_ACCESS_LOG": "false",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO_ROOT),
    }


def django_migrate(database_url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--verbosity", "0"],
        cwd=REPO_ROOT,
        env=django_env(database_url),
        check=True,
        timeout=180,
    )


def run_django_ops(database_url: str, *ops: str) -> dict[str, Any]:
    """Run monolith writes through the Django ORM in a subprocess (see django_ops.py)."""
    import json

    done = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "django_ops.py"), *ops],
        cwd=REPO_ROOT,
        env=django_env(database_url),
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def service_migrate(database_url: str) -> None:
    from extracted_services.common.migrations import upgrade

    upgrade("catalog", database_url)


def clone_database(admin_url: str, template: str, label: str) -> tuple[str, str]:
    name = unique_name(f"strangler_dw_{label}")
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    return name, with_database(libpq_url(admin_url), name)


@pytest.fixture(scope="session")
def dw_templates(pg_admin_url: str) -> Iterator[dict[str, str]]:
    names = {"monolith": unique_name("strangler_dwt_m"), "service": unique_name("strangler_dwt_s")}
    try:
        django_migrate(create_database(pg_admin_url, names["monolith"]))
        service_migrate(create_database(pg_admin_url, names["service"]))
        yield names
    finally:
        for name in names.values():
            drop_database(pg_admin_url, name)


@dataclass
class Pair:
    """A monolith database and a catalog service database, plus helpers to compare them."""

    admin_url: str
    monolith_url: str
    service_url: str
    service_name: str
    relays: list[Relay] = field(default_factory=list)

    def settings(self, **overrides: Any) -> RelaySettings:
        values: dict[str, Any] = {
            "context": "catalog",
            "monolith_url": self.monolith_url,
            "service_url": self.service_url,
            "backoff_base": 0.05,
            "backoff_max": 0.5,
            "max_attempts": 3,
            "stale_after": 1.0,
            "poll_interval": 0.05,
        }
        values.update(overrides)
        return RelaySettings(**values)

    def relay(self, **overrides: Any) -> Relay:
        relay = Relay(self.settings(**overrides))
        self.relays.append(relay)
        return relay

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "CATALOG_DATABASE_URL": self.service_url,
            "STRANGLER_MONOLITH_DATABASE_URL": self.monolith_url,
            "STRANGLER_PHASE": "dual_write",
            "STRANGLER_RELAY_BACKOFF_BASE": "0.05",
            "STRANGLER_RELAY_BACKOFF_MAX": "0.5",
            "STRANGLER_RELAY_MAX_ATTEMPTS": "3",
            "STRANGLER_RELAY_STALE_AFTER": "1",
            "STRANGLER_RELAY_POLL_INTERVAL": "0.05",
            **extra,
        }

    def monolith(self, statement: str, params: dict[str, Any] | None = None) -> Any:
        with self.relays[0].engines["monolith"].begin() as conn:
            return conn.execute(text(statement), params or {})

    def service(self, statement: str, params: dict[str, Any] | None = None) -> Any:
        with self.relays[0].engines["service"].begin() as conn:
            return conn.execute(text(statement), params or {})

    def rows(self, side: str) -> dict[str, dict[Any, dict[str, Any]]]:
        """Every mapped table of ``side`` in canonical (service) form, by key."""
        mapping = mapping_for("catalog")
        relay = self.relays[0]
        found: dict[str, dict[Any, dict[str, Any]]] = {}
        with relay.engines[side].connect() as conn:
            for pair in mapping.tables:
                table = relay.table(side, pair, conn)
                columns = pair.monolith_columns if side == "monolith" else pair.service_columns
                result = conn.execute(select(*(table.c[name] for name in columns))).mappings()
                convert = (
                    pair.canonical_from_monolith
                    if side == "monolith"
                    else pair.canonical_from_service
                )
                found[pair.name] = {row[columns[0]]: convert(row) for row in result}
        return found

    def outbox_counts(self, side: str) -> dict[str, int]:
        from sqlalchemy import func, select

        with self.relays[0].engines[side].connect() as conn:
            rows = conn.execute(
                select(outbox_table.c.status, func.count()).group_by(outbox_table.c.status)
            ).all()
        return {row[0]: int(row[1]) for row in rows}

    def drained(self) -> bool:
        return all(
            not (counts.get("pending") or counts.get("in_flight"))
            for counts in (self.outbox_counts("monolith"), self.outbox_counts("service"))
        )

    def in_sync(self) -> bool:
        return self.drained() and self.rows("monolith") == self.rows("service")

    def assert_in_sync(self, timeout: float = 60.0) -> None:
        try:
            wait_until(self.in_sync, timeout=timeout, interval=0.1, what="both databases equal")
        except TimeoutError:
            monolith, service = self.rows("monolith"), self.rows("service")
            for name in monolith:
                missing = sorted(set(monolith[name]) - set(service[name]))[:5]
                extra = sorted(set(service[name]) - set(monolith[name]))[:5]
                differing = [
                    (key, monolith[name][key], service[name][key])
                    for key in sorted(set(monolith[name]) & set(service[name]))
                    if monolith[name][key] != service[name][key]
                ][:3]
                print(name, "missing", missing, "extra", extra, "differing", differing)
            print("outbox", self.outbox_counts("monolith"), self.outbox_counts("service"))
            for side in ("monolith", "service"):
                with self.relays[0].engines[side].connect() as conn:
                    stuck = conn.execute(
                        text(
                            "SELECT id, aggregate_type, aggregate_key, operation, attempts, "
                            "last_error FROM strangler_outbox "
                            "WHERE status NOT IN ('applied', 'superseded') LIMIT 5"
                        )
                    ).all()
                print(side, "stuck", stuck)
            raise

    def set_service_connections(self, allowed: bool) -> None:
        with psycopg.connect(libpq_url(self.admin_url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                    sql.Identifier(self.service_name), sql.SQL("true" if allowed else "false")
                )
            )
            if not allowed:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    [self.service_name],
                )
        for relay in self.relays:  # pooled connections of this process died with the backends
            relay.engines["service"].dispose()


@pytest.fixture
def pair(pg_admin_url: str, dw_templates: dict[str, str]) -> Iterator[Pair]:
    monolith_name, monolith_url = clone_database(pg_admin_url, dw_templates["monolith"], "m")
    service_name, service_url = clone_database(pg_admin_url, dw_templates["service"], "s")
    made = Pair(pg_admin_url, monolith_url, service_url, service_name)
    first = made.relay()
    set_capture(first.engines["monolith"], "catalog", enabled=True)
    try:
        yield made
    finally:
        for relay in made.relays:
            relay.close()
        made.set_service_connections(True)
        drop_database(pg_admin_url, monolith_name)
        drop_database(pg_admin_url, service_name)


Starter = Callable[..., ManagedProcess]


@pytest.fixture
def start_relay(
    processes: Starter, redis_url: str, queue_name: str
) -> Callable[..., ManagedProcess]:
    """Factory: ``start_relay(pair, mode="inline", **env)`` -> the relay as a real process.

    Its Celery retries go to this test's own queue on the shared Redis unless ``env`` says
    otherwise.
    """
    broker = {"STRANGLER_BROKER_URL": redis_url, "STRANGLER_RELAY_QUEUE": queue_name}
    return lambda pair, mode="inline", **env: _start_relay(processes, pair, mode, {**broker, **env})


def _start_relay(processes: Starter, pair: Pair, mode: str, env: dict[str, str]) -> ManagedProcess:
    port = free_port()
    return processes(
        [
            sys.executable,
            "-m",
            "dualwrite",
            "relay",
            "catalog",
            "--mode",
            mode,
            "--metrics-port",
            str(port),
            "--log-level",
            "INFO",
        ],
        name="relay",
        health_url=f"http://127.0.0.1:{port}/metrics",
        env=pair.env(**env),
    )


@pytest.fixture
def start_worker(processes: Starter) -> Callable[..., ManagedProcess]:
    """Factory: ``start_worker(pair, broker_url, queue)`` -> a real Celery worker process."""
    return lambda pair, broker, queue: _start_worker(processes, pair, broker, queue)


def _start_worker(processes: Starter, pair: Pair, broker: str, queue: str) -> ManagedProcess:
    worker = processes(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "dualwrite.celery_app",
            "worker",
            "-Q",
            queue,
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        name="celery-worker",
        env=pair.env(STRANGLER_BROKER_URL=broker, STRANGLER_RELAY_QUEUE=queue),
    )
    wait_until(lambda: "ready." in worker.log_tail(200), timeout=60, what="celery worker ready")
    return worker


@pytest.fixture
def queue_name() -> str:
    return f"dualwrite-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test only (the machine's shared one is never touched)."""
    server = PrivateRedis(tmp_path / "logs")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A Django-migrated monolith and an Alembic-migrated catalog database on SQLite files."""
    base = tmp_path_factory.mktemp("dw-sqlite")
    paths = {"monolith": base / "monolith.sqlite3", "service": base / "catalog.sqlite3"}
    django_migrate(f"sqlite:///{paths['monolith']}")
    service_migrate(f"sqlite:///{paths['service']}")
    return paths


@pytest.fixture
def sqlite_pair(sqlite_templates: dict[str, Path], tmp_path: Path) -> Iterator[Pair]:
    """A :class:`Pair` on copies of the SQLite templates, capture on."""
    urls = {}
    for side, template in sqlite_templates.items():
        shutil.copy(template, tmp_path / template.name)
        urls[side] = f"sqlite:///{tmp_path / template.name}"
    made = Pair("", urls["monolith"], urls["service"], "")
    set_capture(made.relay().engines["monolith"], "catalog", enabled=True)
    yield made
    for relay in made.relays:
        relay.close()


@pytest.fixture(name="django_ops")
def django_ops_fixture() -> Callable[..., dict[str, Any]]:
    """``django_ops(url, "seed", "bulk_update", ...)``: ORM writes in a subprocess."""
    return run_django_ops


@pytest.fixture
def fresh_service(pg_admin_url: str, dw_templates: dict[str, str]) -> Iterator[Callable[[], str]]:
    """Factory: another freshly migrated, empty catalog service database (URL)."""
    made: list[str] = []

    def make() -> str:
        name, url = clone_database(pg_admin_url, dw_templates["service"], "fresh")
        made.append(name)
        return url

    yield make
    for name in made:
        drop_database(pg_admin_url, name)
