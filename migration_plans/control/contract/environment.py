"""Two copies of the same data, and the monolith and the service serving one each.

1. The monolith's database is migrated (Django) and seeded (``strangler monolith seed``,
   deterministic), and an API token is added for the check's user.
2. A copy of it becomes the service's view of the monolith (references, relay target);
   the service's own database is migrated (Alembic) and backfilled from that copy with
   no id headroom, so both sides hand out the same next ids.
3. The monolith (uvicorn) and the service (``strangler service serve``, pinned to
   ``dual_write``, or to ``shared`` reading the copy, its writes signed with a throwaway
   identity key) start on loopback.

SQLite files in a temporary folder by default; with a PostgreSQL server URL, three
databases on it (dropped at the end). Everything is removed when the block ends.

    with ContractEnvironment.start(plan, seed=1) as env:
        env.monolith_url, env.service_url, env.monolith_db, env.service_db
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import sqlalchemy as sa
from psycopg import sql

from dualwrite.backfill import Backfill
from dualwrite.config import RelaySettings
from migration_plans.control.contract.exceptions import EnvironmentFailed
from migration_plans.control.processes import (
    ManagedProcess,
    ProcessStartError,
    free_port,
    uvicorn_argv,
)
from migration_plans.core import database
from migration_plans.core.database import libpq_url, with_database
from migration_plans.core.identity import IDENTITY_HEADER, Identity, sign_identity
from migration_plans.core.phase import Phase
from migration_plans.core.plan import Plan
from migration_plans.core.settings import PLANS_DIR_ENV

CACHE_DIR = Path(tempfile.gettempdir()) / "strangler-contract-cache"
"""Migrated and seeded SQLite databases, by a hash of what they are built from."""
SEED_PRODUCTS = 30
SEED_CUSTOMERS = 4
SEED_ORDERS = 6


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "migration_plans.control.cli", *args]


def _sources(plans_dir: Path, *packages: str) -> str:
    """A digest of the plans and of every migration and seeding file under ``packages``."""
    root = Path(__file__).resolve().parents[3]
    files = sorted(plans_dir.glob("*.yaml"))
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts or "versions" in path.parts or path.name == "seeding.py":
                files.append(path)
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _manage(*args: str) -> list[str]:
    """Django's manage.py of the monolith (no CLI start-up on top: it is run twice)."""
    return [sys.executable, "-m", "legacy_monolith.manage", *args]


def _run(argv: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(
        argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise EnvironmentFailed(f"{what} failed ({done.returncode}):\n{done.stderr[-3000:]}")


@dataclass
class Databases:
    """Where the monolith's data and its two copies live."""

    monolith: str
    monolith_copy: str
    service: str
    cleanup: list[str] = field(default_factory=list)

    @classmethod
    def sqlite(cls, folder: Path) -> Databases:
        return cls(
            f"sqlite:///{folder / 'monolith.sqlite3'}",
            f"sqlite:///{folder / 'monolith-copy.sqlite3'}",
            f"sqlite:///{folder / 'service.sqlite3'}",
        )

    @classmethod
    def postgres(cls, server: str, context: str) -> Databases:
        stem = f"strangler_contract_{context}_{uuid.uuid4().hex[:8]}"
        names = [f"{stem}_m", f"{stem}_mc", f"{stem}_s"]
        base = libpq_url(server)
        monolith, copy, service = (with_database(base, name) for name in names)
        made = cls(monolith, copy, service)
        made.cleanup = [base, *names]
        return made

    def create(self, name: str, template: str | None = None) -> None:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with psycopg.connect(self.cleanup[0], autocommit=True, connect_timeout=5) as conn:
            conn.execute(statement)

    def drop(self) -> None:
        if not self.cleanup:
            return
        server, *names = self.cleanup
        with psycopg.connect(server, autocommit=True, connect_timeout=5) as conn:
            for name in names:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def add_user(url: str, *, staff: bool = False) -> tuple[str, int]:
    """A monolith user (staff or not) with an API token (what the proxy would check for a
    client): the token and the user's id (what the proxy signs as the identity's ``sub``)."""
    key = secrets.token_hex(20)
    engine = database.engine(url)
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            user = conn.execute(
                sa.text(
                    "INSERT INTO auth_user (password, is_superuser, username, first_name,"
                    " last_name, email, is_staff, is_active, date_joined) VALUES ('!', :no,"
                    " 'contract-check', '', '', '', :staff, :yes, :now) RETURNING id"
                ),
                {"no": False, "staff": staff, "yes": True, "now": now},
            ).scalar_one()
            conn.execute(
                sa.text(
                    "INSERT INTO authtoken_token (key, created, user_id) VALUES (:k, :now, :u)"
                ),
                {"k": key, "now": now, "u": user},
            )
    finally:
        engine.dispose()
    return key, int(user)


def add_token(url: str) -> str:
    """A monolith user who is not staff, with an API token: the token."""
    return add_user(url)[0]


@dataclass
class ContractEnvironment:
    """The running monolith and service and their databases (see the module docstring)."""

    plan: Plan
    plans_dir: Path
    databases: Databases
    monolith_url: str = ""
    service_url: str = ""
    token: str = ""
    identity_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    processes: list[ManagedProcess] = field(default_factory=list)
    phase: Phase = Phase.DUAL_WRITE
    staff: bool = False
    user_id: int = 0

    @classmethod
    @contextmanager
    def start(
        cls,
        plan: Plan,
        plans_dir: Path,
        *,
        seed: int,
        pg_server: str | None = None,
        phase: Phase = Phase.DUAL_WRITE,
        staff: bool = False,
    ) -> Iterator[ContractEnvironment]:
        """Prepare the databases, start both processes (the service pinned to ``phase``:
        dual_write, or shared reading the monolith's copy); stop and remove everything after."""
        with ExitStack() as stack:
            folder = Path(tempfile.mkdtemp(prefix=f"strangler-contract-{plan.context}-"))
            stack.callback(shutil.rmtree, folder, True)
            if pg_server:
                databases = Databases.postgres(pg_server, plan.context)
                stack.callback(databases.drop)
            else:
                databases = Databases.sqlite(folder)
            env = cls(plan, plans_dir.resolve(), databases, phase=phase, staff=staff)
            stack.callback(env.stop)
            env.prepare(folder, seed)
            env.serve(folder)
            yield env

    def base_env(self, folder: Path) -> dict[str, str]:
        return {
            "SECRET_KEY": secrets.token_hex(16),
            "DEBUG": "false",
            "MONOLITH_ACCESS_LOG": "false",
            "STRANGLER_CONTROL_DB_URL": f"sqlite:///{folder / 'control.sqlite3'}",
            "STRANGLER_LIVE_PHASE": "off",
            "STRANGLER_LOG_DIR": str(folder / "log"),
            "PYTHONUNBUFFERED": "1",
            PLANS_DIR_ENV: str(self.plans_dir),
        }

    def prepare(self, folder: Path, seed: int) -> None:
        dbs, context = self.databases, self.plan.context
        env = self.base_env(folder)
        if dbs.cleanup:
            dbs.create(dbs.cleanup[1])
            dbs.create(dbs.cleanup[3])
        monolith = {**env, "DATABASE_URL": dbs.monolith}
        seeding = ["seed", f"--products={SEED_PRODUCTS}", f"--seed={seed}"]
        seeding += [f"--customers={SEED_CUSTOMERS}", f"--orders={SEED_ORDERS}"]

        def monolith_db() -> None:
            _run(_manage("migrate", "--no-input"), monolith, "monolith migrate")
            _run(_manage(*seeding), monolith, "monolith seed")

        def service_db() -> None:
            argv = _cli("service", "migrate", context, "--database-url", dbs.service)
            _run(argv, env, f"service migrate {context}")

        sources = _sources(self.plans_dir, "legacy_monolith", "dualwrite/django_app")
        with ThreadPoolExecutor(max_workers=2) as pool:
            built = [
                pool.submit(self._cached, dbs.monolith, monolith_db, [*seeding, sources]),
                pool.submit(
                    self._cached,
                    dbs.service,
                    service_db,
                    [context, _sources(self.plans_dir, f"extracted_services/{context}")],
                ),
            ]
            for future in built:
                future.result()
        self.token, self.user_id = add_user(dbs.monolith, staff=self.staff)
        if dbs.cleanup:
            dbs.create(dbs.cleanup[2], template=dbs.cleanup[1])
        else:
            shutil.copyfile(
                dbs.monolith.removeprefix("sqlite:///"),
                dbs.monolith_copy.removeprefix("sqlite:///"),
            )
        settings = RelaySettings(
            context=context,
            monolith_url=dbs.monolith_copy,
            service_url=dbs.service,
            phase=Phase.DUAL_WRITE,
        )
        backfill = Backfill(settings, id_headroom=0, mapping=self.plan.mapping)
        try:
            backfill.run(progress=False)
        finally:
            backfill.close()
            backfill.monolith.dispose()
            backfill.service.dispose()

    @staticmethod
    def _cached(url: str, build: Callable[[], None], key: list[str]) -> None:
        """Build a SQLite database, or copy the one built before from the same sources.

        Migrating and seeding cost seconds at every run; the result only changes with the
        migrations, the plans (capture triggers) and the seed, which the key hashes.
        """
        if not url.startswith("sqlite:///"):
            build()
            return
        target = Path(url.removeprefix("sqlite:///"))
        digest = hashlib.sha256("\0".join(key).encode()).hexdigest()[:24]
        cached = CACHE_DIR / f"{target.stem}-{digest}.sqlite3"
        if cached.exists():
            shutil.copyfile(cached, target)
            return
        build()
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.partial")
        shutil.copyfile(target, partial)
        partial.replace(cached)

    def serve(self, folder: Path) -> None:
        dbs, context = self.databases, self.plan.context
        env = self.base_env(folder)
        monolith_port, service_port = free_port(), free_port()
        self.monolith_url = f"http://127.0.0.1:{monolith_port}"
        self.service_url = f"http://127.0.0.1:{service_port}"
        prefix = context.upper()
        service_env = {
            **env,
            f"{prefix}_PHASE": self.phase.value,
            f"{prefix}_DATABASE_URL": dbs.service,
            f"{prefix}_MONOLITH_DATABASE_URL": dbs.monolith_copy,
            f"{prefix}_IDENTITY_KEY": self.identity_key,
            f"{prefix}_INLINE_RELAY": "true",
        }
        monolith_env = {**env, "DATABASE_URL": dbs.monolith}
        log_dir = folder / "log"
        starts = [
            (
                "monolith",
                uvicorn_argv("legacy_monolith.asgi:application", monolith_port),
                monolith_env,
                self.monolith_url,
            ),
            (
                context,
                _cli("service", "serve", context, "--port", str(service_port)),
                service_env,
                self.service_url,
            ),
        ]
        for name, argv, child_env, _url in starts:
            self.processes.append(
                ManagedProcess.start(argv, name=name, env=child_env, log_dir=log_dir)
            )
        try:
            for process, (_, _, _, url) in zip(self.processes, starts, strict=True):
                process.health_url = f"{url}/healthz"
                process.wait_healthy(90)
        except ProcessStartError as exc:
            raise EnvironmentFailed(str(exc)) from exc

    def service_headers(self) -> dict[str, str]:
        """The identity the proxy would sign for the check's user (fresh for each request):
        the monolith user's id as ``sub``, as the proxy signs it."""
        identity = Identity(sub=str(self.user_id), name="contract-check")
        key = self.identity_key.encode()
        return {IDENTITY_HEADER: sign_identity(identity, key=key, audience=self.plan.context)}

    def monolith_headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
