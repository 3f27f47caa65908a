"""The whole topology as real local processes: ``strangler up``, the demo, phase replay.

Monolith, services, proxy, one relay per context, Celery workers (relay retries,
reconciler segments) and beat, on the embedded default (SQLite files and kombu's
SQLAlchemy transport under one ``var`` folder) or on PostgreSQL/Redis URLs.

Nothing here is the example shop's but the defaults: the services are the contexts of
the plans folder (each plan's ``service_module`` and ``port``), the monolith is the
Django project of :attr:`StackConfig.monolith_settings` (with its Celery app, if any,
as the saga worker), and :attr:`StackConfig.project_path` goes first on every child's
``PYTHONPATH`` so packages outside the toolkit import.

    config = StackConfig.embedded(Path("var/demo"), replicas=2)
    with Stack(config) as stack:
        stack.prepare()          # migrate databases, write the route table, publish phases
        stack.start()            # every process, each waited on with a deadline

Services, relays and proxies follow the published phase of their context while they
run (:mod:`migration_plans.core.live_phase`): ``strangler plan advance`` moves a
context with no restart. ``replicas=N`` runs N proxies and N processes per service,
each on its own port (base port + 10 x i); the route table lists every service
replica. ``live_phase=False`` is the old way, kept as the benchmark's baseline:
every process is pinned to its phase and :meth:`Stack.restart_context` restarts a
context's service and relay after a transition.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from migration_plans.control.exceptions import PlanError
from migration_plans.control.logstream import LogStream
from migration_plans.control.plan_file import read_plans
from migration_plans.control.processes import ManagedProcess, ProcessStartError, wait_until
from migration_plans.control.routing import render_routes
from migration_plans.core.control_db import control_engine
from migration_plans.core.live_phase import publish, seed
from migration_plans.core.plan import Plan, load_plans
from migration_plans.core.replicas import forget_processes
from migration_plans.core.settings import (
    DEFAULT_SERVICE_PORTS,
    PLANS_DIR_ENV,
    PROJECT_PATH_ENV,
    known_contexts,
    project_path,
    service_port,
)
from migration_plans.core.settings import plans_dir as configured_plans_dir
from migration_plans.core.yamlfile import ConfigError

SERVICE_PORTS = DEFAULT_SERVICE_PORTS
"""The example shop's service ports (kept for the benchmarks); a stack's services are
the contexts of its plans (:func:`plan_service_ports`)."""
SAGA_WORKER = "saga-worker"
MONOLITH_SETTINGS_ENV = "STRANGLER_MONOLITH_SETTINGS"
MONOLITH_CELERY_APP_ENV = "STRANGLER_MONOLITH_CELERY_APP"
MONOLITH_HEALTH_PATH_ENV = "STRANGLER_MONOLITH_HEALTH_PATH"
SHOP_SETTINGS = "legacy_monolith.settings"
SHOP_CELERY_APP = "legacy_monolith.celery_app"
REPLICA_PORT_STRIDE = 10
"""Replica ``i`` of a listener on port ``p`` listens on ``p + 10 * i``."""
MAX_REPLICAS = 8


def replica_port(base: int, index: int) -> int:
    """The port of replica ``index`` (0-based) of a listener whose first replica is on ``base``."""
    return base + REPLICA_PORT_STRIDE * index


def plan_service_ports(plans_dir: Path, environ: Mapping[str, str] | None = None) -> dict[str, int]:
    """Each context of the plans in ``plans_dir`` with its service's port
    (:func:`~migration_plans.core.settings.service_port`; ``environ`` ``{}`` by default:
    no ``STRANGLER_<CONTEXT>_PORT``). No folder: no contexts."""
    plans = load_plans(plans_dir) if plans_dir.is_dir() else {}
    return {
        context: service_port(context, plan.port, {} if environ is None else environ)
        for context, plan in plans.items()
    }


class StackConfig(BaseModel):
    """Where every database, broker and port of a local stack is."""

    model_config = ConfigDict(frozen=True)

    var_dir: Path
    monolith_db: str
    service_dbs: dict[str, str]
    broker_url: str
    result_backend: str
    control_db: str
    host: str = "127.0.0.1"
    proxy_port: int = 8000
    monolith_port: int = 8001
    service_ports: dict[str, int] = Field(default_factory=dict)
    plans_dir: Path = Field(default_factory=configured_plans_dir, validate_default=True)
    monolith_settings: str = Field(
        SHOP_SETTINGS, min_length=1, description="The monolith's Django settings module."
    )
    monolith_celery_app: str | None = Field(
        None,
        description="The monolith's Celery app run as the saga worker ('' runs none; None: "
        "the shop's with the shop's settings, else none).",
    )
    monolith_health_path: str = Field(
        "/healthz",
        pattern=r"^/",
        description="A path the monolith answers 2xx on once it serves (the stack waits on it).",
    )
    project_path: tuple[Path, ...] = Field(
        default=(), description="Folders put first on every child's PYTHONPATH."
    )
    secret_key: str
    identity_key: str
    admin_token: str
    canary_key: str = Field(default_factory=lambda: secrets.token_urlsafe(32))
    redis_url: str | None = None
    shadow_store_url: str | None = None
    celery: bool = True
    replicas: int = Field(1, ge=1, le=MAX_REPLICAS)
    live_phase: bool = True
    # gunicorn's threads: an order saga's request waits on the services without holding
    # every other request back (uvicorn runs Django's sync views one at a time).
    monolith_server: Literal["uvicorn", "gunicorn"] = "gunicorn"
    monolith_workers: int = Field(1, ge=1, le=32)

    @field_validator("plans_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        """Children get an absolute ``STRANGLER_PLANS_DIR``, whatever their working folder."""
        return value.resolve()

    @field_validator("project_path")
    @classmethod
    def _absolute_paths(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        return tuple(path.resolve() for path in value)

    @model_validator(mode="after")
    def _distinct_ports(self) -> StackConfig:
        """Two listeners on one port (a derived service port meeting another's replica
        block) are refused naming both."""
        seen: dict[int, str] = {}
        for name, port in self.ports().items():
            if port in seen:
                raise ValueError(
                    f"{seen[port]} and {name} would both listen on port {port}: give one "
                    "a port (the plan's `port:`, or STRANGLER_<CONTEXT>_PORT)"
                )
            seen[port] = name
        return self

    @classmethod
    def embedded(cls, var_dir: Path, **overrides: object) -> StackConfig:
        """SQLite files and the SQLAlchemy broker under ``var_dir``: no servers needed.

        The services are the contexts of the plans folder (``plans_dir``, default
        ``STRANGLER_PLANS_DIR``), each on its port; ``service_ports`` and ``service_dbs``
        overrides are merged over those (a context of no plan may be added).
        """
        var = var_dir.resolve()
        plans = Path(str(overrides.get("plans_dir") or configured_plans_dir()))
        ports: dict[str, object] = {
            **plan_service_ports(plans),
            **_mapping(overrides.pop("service_ports", {}), "service_ports"),
        }
        dbs: dict[str, object] = {
            **{ctx: f"sqlite:///{var / f'{ctx}.sqlite3'}" for ctx in ports},
            **_mapping(overrides.pop("service_dbs", {}), "service_dbs"),
        }
        values: dict[str, object] = {
            "var_dir": var,
            "monolith_db": f"sqlite:///{var / 'monolith.sqlite3'}",
            "service_ports": ports,
            "service_dbs": dbs,
            "broker_url": f"sqla+sqlite:///{var / 'broker.sqlite3'}",
            "result_backend": f"db+sqlite:///{var / 'results.sqlite3'}",
            "control_db": f"sqlite:///{var / 'control.sqlite3'}",
            "secret_key": _stable_secret(var, "secret_key"),
            "identity_key": _stable_secret(var, "identity_key"),
            "admin_token": _stable_secret(var, "admin_token"),
            "canary_key": _stable_secret(var, "canary_key"),
        }
        values.update(overrides)
        return cls.model_validate(values)

    @classmethod
    def from_env(cls, var_dir: Path) -> StackConfig:
        """Embedded defaults, overridden by ``STRANGLER_*`` / ``<CONTEXT>_DATABASE_URL``.

        Ports: ``STRANGLER_PROXY_PORT``, ``STRANGLER_MONOLITH_PORT``,
        ``STRANGLER_<CONTEXT>_PORT``. The shadow results go to
        ``STRANGLER_SHADOW_STORE_URL``, else Redis when ``STRANGLER_REDIS_URL`` is set,
        else the control-plane database. The monolith: ``STRANGLER_MONOLITH_SETTINGS``,
        ``STRANGLER_MONOLITH_CELERY_APP`` (set empty: no saga worker),
        ``STRANGLER_MONOLITH_HEALTH_PATH``; ``STRANGLER_PROJECT_PATH`` for imports.
        """
        env = os.environ
        base = cls.embedded(var_dir, **ports_from_env(env), **monolith_from_env(env))
        services = {
            ctx: env.get(f"{ctx.upper()}_DATABASE_URL", url)
            for ctx, url in base.service_dbs.items()
        }
        broker = env.get("STRANGLER_BROKER_URL", base.broker_url)
        return base.model_copy(
            update={
                "monolith_db": env.get("STRANGLER_MONOLITH_DATABASE_URL", base.monolith_db),
                "service_dbs": services,
                "broker_url": broker,
                "result_backend": env.get(
                    "STRANGLER_RESULT_BACKEND",
                    broker if broker.startswith("redis") else base.result_backend,
                ),
                "control_db": env.get("STRANGLER_CONTROL_DB_URL", base.control_db),
                "redis_url": env.get("STRANGLER_REDIS_URL"),
                "shadow_store_url": env.get("STRANGLER_SHADOW_STORE_URL")
                or env.get("STRANGLER_REDIS_URL"),
            }
        )

    @property
    def shadow_store(self) -> str:
        """Where the proxy's mirror, ``strangler shadow`` and the gates keep shadow results."""
        return self.shadow_store_url or self.control_db

    def ports(self) -> dict[str, int]:
        """Every listening process's port, by process name."""
        found = {"monolith": self.monolith_port}
        for name, base in (("proxy", self.proxy_port), *self.service_ports.items()):
            for index in range(self.replicas):
                found[replica_name(name, index)] = replica_port(base, index)
        return found

    def busy_ports(self) -> dict[str, int]:
        """The ports this stack needs that something else already listens on."""
        return {name: port for name, port in self.ports().items() if port_in_use(port, self.host)}

    @property
    def routes_path(self) -> Path:
        return self.var_dir / "routes.yaml"

    @property
    def log_dir(self) -> Path:
        return self.var_dir / "log"

    def url(self, port: int) -> str:
        return f"http://{self.host}:{port}"

    @property
    def proxy_url(self) -> str:
        """The first proxy (every proxy: :attr:`proxy_urls`)."""
        return self.url(self.proxy_port)

    @property
    def proxy_urls(self) -> list[str]:
        return [self.url(replica_port(self.proxy_port, i)) for i in range(self.replicas)]

    def service_urls(self, context: str) -> list[str]:
        """Every replica of ``context``'s service."""
        base = self.service_ports[context]
        return [self.url(replica_port(base, i)) for i in range(self.replicas)]

    @property
    def monolith_url(self) -> str:
        return self.url(self.monolith_port)

    def service_url(self, context: str) -> str:
        return self.url(self.service_ports[context])

    @property
    def saga_app(self) -> str:
        """The Celery app of the saga worker ('' when the stack runs none)."""
        if self.monolith_celery_app is not None:
            return self.monolith_celery_app
        return SHOP_CELERY_APP if self.monolith_settings == SHOP_SETTINGS else ""

    @property
    def monolith_health_url(self) -> str:
        """What the stack waits on before the monolith counts as started."""
        return f"{self.monolith_url}{self.monolith_health_path}"

    def secrets_for(self, role: Role | None) -> dict[str, str]:
        """The secrets one kind of process needs, and only those.

        The admin token (admin API, dashboard) and the canary key go to proxies only; the
        identity signing key to whoever signs or verifies identity headers: proxies,
        services, the monolith and its saga worker (the ports call services).
        """
        identity = {"STRANGLER_IDENTITY_KEY": self.identity_key}
        if role == "proxy":
            admin = {"STRANGLER_ADMIN_TOKEN": self.admin_token}
            return {**identity, **admin, "STRANGLER_CANARY_KEY": self.canary_key}
        return identity if role in ("service", "monolith", "saga") else {}

    def environment(self) -> dict[str, str]:
        """Variables every child process gets (each package documents its own); no secret
        but the monolith's ``SECRET_KEY`` (:meth:`secrets_for` adds a role's)."""
        env = {
            "DATABASE_URL": self.monolith_db,
            "SECRET_KEY": self.secret_key,
            "STRANGLER_MONOLITH_DATABASE_URL": self.monolith_db,
            "STRANGLER_BROKER_URL": self.broker_url,
            "STRANGLER_RESULT_BACKEND": self.result_backend,
            "STRANGLER_CONTROL_DB_URL": self.control_db,
            "STRANGLER_SHADOW_STORE_URL": self.shadow_store,
            PLANS_DIR_ENV: str(self.plans_dir),
            "STRANGLER_ROUTES": str(self.routes_path),
            "STRANGLER_LOG_DIR": str(self.log_dir),
            "MONOLITH_ACCESS_LOG": "false",
            "PYTHONUNBUFFERED": "1",
            "STRANGLER_LIVE_PHASE": "on" if self.live_phase else "off",
            MONOLITH_SETTINGS_ENV: self.monolith_settings,
        }
        if self.project_path:
            inherited = os.environ.get("PYTHONPATH", "")
            folders = [str(path) for path in self.project_path]
            env["PYTHONPATH"] = os.pathsep.join([*folders, *([inherited] if inherited else [])])
            env[PROJECT_PATH_ENV] = os.pathsep.join(folders)
        for context, url in self.service_dbs.items():
            env[f"{context.upper()}_DATABASE_URL"] = url
        for context in self.service_ports:
            # The monolith's ports call split contexts' services directly (every replica).
            env[f"{context.upper()}_SERVICE_URL"] = ",".join(self.service_urls(context))
        if self.redis_url:
            env["STRANGLER_REDIS_URL"] = self.redis_url
        return env


Role = Literal["proxy", "service", "monolith", "saga"]
"""Kinds of child process that need a secret (every other child gets none)."""


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something already listens on ``host:port`` (or it cannot be bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like the servers will: connections in TIME_WAIT from a previous run do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def ports_from_env(env: Mapping[str, str], plans_dir: Path | None = None) -> dict[str, object]:
    """Port overrides from ``STRANGLER_PROXY_PORT``, ``..._MONOLITH_PORT``, ``..._<CONTEXT>_PORT``
    (the contexts of ``plans_dir``, default ``STRANGLER_PLANS_DIR``, and the shipped ones)."""
    found: dict[str, object] = {}
    for field, name in (("proxy_port", "PROXY"), ("monolith_port", "MONOLITH")):
        if env.get(f"STRANGLER_{name}_PORT"):
            found[field] = int(env[f"STRANGLER_{name}_PORT"])
    services = {
        context: service_port(context, None, env)
        for context in known_contexts(plans_dir or configured_plans_dir(env))
        if env.get(f"STRANGLER_{context.upper()}_PORT", "").strip()
    }
    if services:
        found["service_ports"] = services
    return found


def monolith_from_env(env: Mapping[str, str]) -> dict[str, object]:
    """The monolith's settings module, Celery app and health path, and the project path,
    from the environment (unset: the shop's defaults; an empty Celery app: none)."""
    found: dict[str, object] = {"project_path": project_path(env)}
    for field, name in (
        ("monolith_settings", MONOLITH_SETTINGS_ENV),
        ("monolith_health_path", MONOLITH_HEALTH_PATH_ENV),
    ):
        if env.get(name, "").strip():
            found[field] = env[name].strip()
    if MONOLITH_CELERY_APP_ENV in env:
        found["monolith_celery_app"] = env[MONOLITH_CELERY_APP_ENV].strip()
    return found


def _mapping(value: object, name: str) -> dict[str, object]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping of context to value, not {value!r}")
    return dict(value)


def replica_name(name: str, index: int) -> str:
    """``catalog``, ``catalog-2``, ...: the process name of replica ``index``."""
    return name if index == 0 else f"{name}-{index + 1}"


def _stable_secret(var_dir: Path, name: str) -> str:
    """A random secret kept under ``var_dir`` so restarts of the stack agree on it."""
    path = var_dir / "secrets" / name
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    path.write_text(value)
    path.chmod(0o600)
    return value


def strangler_argv(*args: str) -> list[str]:
    """Run the ``strangler`` CLI of this interpreter."""
    return [sys.executable, "-m", "migration_plans.control.cli", *args]


def celery_argv(app: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", app, *args]


class Stack:
    """Starts, restarts and stops the processes of a :class:`StackConfig`."""

    def __init__(self, config: StackConfig, *, extra_env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.extra_env = dict(extra_env or {})
        self.processes: dict[str, ManagedProcess] = {}

    # -- preparation ------------------------------------------------------------------

    def env(self, role: Role | None = None, **more: str) -> dict[str, str]:
        """A child's environment: the shared variables and ``role``'s secrets."""
        return {
            **self.config.environment(),
            **self.config.secrets_for(role),
            **self.extra_env,
            **more,
        }

    @contextmanager
    def environ(self) -> Iterator[None]:
        """``os.environ`` as the stack's processes see it, for in-process control-plane calls
        (this process is the operator's: it gets every secret)."""
        saved = dict(os.environ)
        os.environ.update(self.env("proxy"))
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def plans(self) -> dict[str, Plan]:
        """The plans of the stack's folder; :class:`PlansMissing` names it when empty."""
        return read_plans(self.config.plans_dir)

    def run_cli(self, *args: str, timeout: float = 600) -> str:
        """Run a ``strangler`` command to completion; its output, or an error naming it."""
        done = subprocess.run(
            strangler_argv(*args),
            env={**os.environ, **self.env()},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise ProcessStartError(
                f"`strangler {' '.join(args)}` failed ({done.returncode}):\n{done.stderr[-4000:]}"
            )
        return done.stdout

    def prepare(self, services: Iterable[str] | None = None) -> None:
        """Migrate the databases (side by side) and write the route table if there is none yet.

        ``services``: the contexts whose service database is migrated now (default:
        all). A context still in ``shared`` does not need one: entering dual_write
        migrates it (``strangler plan advance``).
        """
        self.config.var_dir.mkdir(parents=True, exist_ok=True)
        wanted = set(self.plans()) if services is None else set(services)
        commands = [("monolith", "migrate")] + [
            ("service", "migrate", context)
            for context in sorted(wanted)
            if context in self.config.service_dbs
        ]
        with ThreadPoolExecutor(max_workers=len(commands)) as pool:
            for future in [pool.submit(self.run_cli, *command) for command in commands]:
                future.result()
        if not self.config.routes_path.exists():
            self.config.routes_path.write_text(self.initial_routes())
        self.publish_plan_phases()

    def publish_plan_phases(self) -> None:
        """Publish each plan's phase before any process starts (they follow what is published).

        A phase published by an earlier run that the plan file no longer says (the file
        was edited while the stack was down) is replaced: nothing serves yet, so no
        fence is needed.
        """
        control = control_engine(self.config.control_db)
        for context, plan in self.plans().items():
            state = seed(control, context, plan.phase)
            if state.phase is not plan.phase or state.fenced:
                publish(control, context, plan.phase)

    def initial_routes(self) -> str:
        """A route table with every upstream and each context routed for its phase.

        It has an ``auth:`` block: the proxy checks client tokens against the monolith
        and forwards the signed identity the services' write endpoints require.
        """
        upstreams: dict[str, str | list[str]] = {"monolith": self.config.monolith_url}
        for context in self.plans():
            if context in self.config.service_ports:
                urls = self.config.service_urls(context)
                upstreams[context] = urls[0] if len(urls) == 1 else urls
        table = render_routes(upstreams, self.plans())
        has_auth = any(line.startswith("auth:") for line in table.splitlines())
        return table if has_auth else table + "auth: {upstream: monolith}\n"

    # -- processes --------------------------------------------------------------------

    def _start(
        self,
        name: str,
        argv: list[str],
        health: str | None,
        *,
        role: Role | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Start a process with ``role``'s secrets; with a health URL, wait until it answers
        (60 s deadline)."""
        process = ManagedProcess.start(
            argv, name=name, env=self.env(role, **(env or {})), log_dir=self.config.log_dir
        )
        self.processes[name] = process
        if health is not None:
            process.health_url = health
            process.wait_healthy(60)

    def service_env(self, plan: Plan) -> dict[str, str]:
        """A context's service and relay: pinned to the plan's phase only without live phase."""
        prefix = plan.context.upper()
        env = {
            f"{prefix}_REVERSE_SYNC": str(plan.reverse_sync).lower(),
            # On SQLite the service applies its own events right after commit (low lag);
            # on PostgreSQL it leaves them to the relay loop, which NOTIFY wakes at once.
            f"{prefix}_INLINE_RELAY": "true",
        }
        if not self.config.live_phase:
            env[f"{prefix}_PHASE"] = plan.phase.value
        return env

    def start_monolith(self) -> None:
        cfg = self.config
        self._start(
            "monolith",
            strangler_argv(
                "monolith",
                "serve",
                "--host",
                cfg.host,
                "--port",
                str(cfg.monolith_port),
                "--server",
                cfg.monolith_server,
                "--workers",
                str(cfg.monolith_workers),
            ),
            cfg.monolith_health_url,
            role="monolith",
        )

    def start_context(self, plan: Plan) -> None:
        """The relay of ``plan``'s context and every replica of its service, side by side."""
        # The relay first: it is polling by the time the service takes its first write.
        self.start_relay(plan)
        with ThreadPoolExecutor(max_workers=self.config.replicas) as pool:
            started = [
                pool.submit(self.start_service, plan, index)
                for index in range(self.config.replicas)
            ]
            for future in started:
                future.result()
        self._wait_for_log(f"relay-{plan.context}", f"relay of {plan.context} started")

    def start_relay(self, plan: Plan) -> None:
        """The relay loop of ``plan``'s context (``relay-<context>``)."""
        self._start(
            f"relay-{plan.context}",
            strangler_argv("dualwrite", "relay", plan.context),
            None,
            env=self.service_env(plan),
        )

    def restart_dead(self, context: str) -> list[str]:
        """Start again the processes of ``context`` that exited (the others keep serving).

        The dead ones are first removed from the replica registry: they could not
        deregister, and a transition would otherwise wait for them until they fall silent.
        """
        plan = self.plans()[context]
        self.forget_dead()
        restarted = []
        for index in range(self.config.replicas):
            name = replica_name(context, index)
            process = self.processes.get(name)
            if process is None or not process.alive():
                if process is not None:
                    self.processes.pop(name).stop()
                self.start_service(plan, index)
                restarted.append(name)
        relay = f"relay-{context}"
        process = self.processes.get(relay)
        if process is None or not process.alive():
            if process is not None:
                self.processes.pop(relay).stop()
            self.start_relay(plan)
            self._wait_for_log(relay, f"relay of {context} started")
            restarted.append(relay)
        return restarted

    def start_service(self, plan: Plan, index: int = 0) -> None:
        """Replica ``index`` of ``plan``'s service, waited on until it answers."""
        cfg = self.config
        url = cfg.service_urls(plan.context)[index]
        port = str(replica_port(cfg.service_ports[plan.context], index))
        argv = strangler_argv("service", "serve", plan.context, "--host", cfg.host, "--port", port)
        self._start(
            replica_name(plan.context, index),
            [*argv, "--advertise-url", url],
            f"{url}/healthz",
            role="service",
            env=self.service_env(plan),
        )

    def _wait_for_log(self, name: str, text: str, timeout: float = 60) -> None:
        """Wait until process ``name`` wrote ``text`` to its log (it has no health URL)."""
        process = self.processes[name]

        def written() -> bool:
            if not process.alive():
                raise ProcessStartError(f"{name} exited:\n{process.log_tail()}")
            return text in process.log_path.read_text(errors="replace")

        try:
            wait_until(written, timeout=timeout, interval=0.1, what=f"{name}: {text!r}")
        except TimeoutError as exc:
            raise ProcessStartError(f"{exc}\n{process.log_tail()}") from exc

    def start_proxy(self, index: int = 0) -> None:
        """Proxy replica ``index``, waited on until it answers."""
        cfg = self.config
        url = cfg.proxy_urls[index]
        argv = strangler_argv(
            "proxy",
            "serve",
            "--routes",
            str(cfg.routes_path),
            "--host",
            cfg.host,
            "--port",
            str(replica_port(cfg.proxy_port, index)),
            "--advertise-url",
            url,
            "--no-access-log",
        )
        self._start(replica_name("proxy", index), argv, f"{url}/_strangler/health", role="proxy")

    def start_proxies(self) -> None:
        with ThreadPoolExecutor(max_workers=self.config.replicas) as pool:
            for future in [pool.submit(self.start_proxy, i) for i in range(self.config.replicas)]:
                future.result()

    def start_workers(self) -> None:
        if not self.config.celery:
            return
        self._start("relay-worker", strangler_argv("dualwrite", "worker"), None)
        reconcile = ["worker", "--pool", "solo", "-Q", "reconciler", "--loglevel", "INFO"]
        self._start("reconcile-worker", celery_argv("reconciler.celery_app", *reconcile), None)
        schedule = str(self.config.var_dir / "celerybeat-schedule")
        beat = ["beat", "--loglevel", "INFO", "--schedule", schedule]
        self._start("beat", celery_argv("reconciler.celery_app", *beat), None)
        self.start_saga_worker()

    def start_saga_worker(self) -> None:
        """The monolith's Celery worker (its ``monolith_celery_app``; none when empty): order
        saga retries, with the sweeper's beat (``-B``)."""
        app = self.config.saga_app
        if not app:
            return
        schedule = str(self.config.var_dir / "saga-beat-schedule")
        argv = ["worker", "-Q", "sagas", "-B", "--schedule", schedule, "--loglevel", "INFO"]
        argv += ["--pool", "threads", "--concurrency", "4"]
        django = {"DJANGO_SETTINGS_MODULE": self.config.monolith_settings}
        self._start(SAGA_WORKER, celery_argv(app, *argv), None, role="saga", env=django)

    def restart_saga_worker(self) -> None:
        """Start the saga worker again if it exited (its dead registration forgotten first)."""
        process = self.processes.get(SAGA_WORKER)
        if process is not None and process.alive():
            return
        self.forget_dead()
        if process is not None:
            self.processes.pop(SAGA_WORKER).stop()
        self.start_saga_worker()

    def start(self) -> None:
        """Every process; the independent ones side by side. Stops what started if one fails.

        Monolith, services, relays and workers start together (each waited on with a
        deadline); the proxies start last, when their upstreams answer.
        """
        plans = [plan for c, plan in self.plans().items() if c in self.config.service_ports]
        try:
            with ThreadPoolExecutor(max_workers=len(plans) + 2) as pool:
                futures = [pool.submit(self.start_monolith), pool.submit(self.start_workers)]
                futures += [pool.submit(self.start_context, plan) for plan in plans]
                for future in futures:
                    future.result()
            self.start_proxies()
        except BaseException:
            self.stop()
            raise

    def restart_context(self, context: str) -> None:
        """Restart a context's service replicas and relay (the pinned, ``live_phase=False`` way)."""
        names = [replica_name(context, i) for i in range(self.config.replicas)]
        for name in (*names, f"relay-{context}"):
            process = self.processes.pop(name, None)
            if process is not None:
                process.stop()
        self.start_context(self.plans()[context])

    def restart_relay_worker(self) -> None:
        """Restart the relay's Celery worker alone (the pinned, ``live_phase=False`` way)."""
        process = self.processes.pop("relay-worker", None)
        if process is not None:
            process.stop()
        if self.config.celery:
            self._start("relay-worker", strangler_argv("dualwrite", "worker"), None)

    def forget_dead(self) -> int:
        """Remove every exited process of this stack from the replica registry."""
        pids = [p.pid for p in self.processes.values() if not p.alive()]
        if not pids:
            return 0
        return forget_processes(control_engine(self.config.control_db), socket.gethostname(), pids)

    def dead(self) -> list[str]:
        """Names of processes that exited on their own."""
        return [name for name, process in self.processes.items() if not process.alive()]

    def stop(self) -> None:
        """Stop everything, newest first."""
        for name in reversed(list(self.processes)):
            self.processes.pop(name).stop()

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_up(config: StackConfig, *, out: TextIO, poll_interval: float = 0.5) -> int:
    """``strangler up``: start everything, stream the logs, stop on ^C or when one exits.

    Phase changes (``strangler plan advance``) need nothing from here: every process
    follows the published phase.
    """
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stack = Stack(config)
    try:
        stack.prepare()
    except (PlanError, ConfigError) as exc:
        out.write(f"strangler up: {exc}\n")
        return 1
    with stack, LogStream(out, colour=out.isatty()) as stream:
        stack.start()
        for name, process in stack.processes.items():
            stream.follow(name, process.log_path)
        proxies = ", ".join(config.proxy_urls)
        out.write(
            f"strangler up: proxy {proxies}, monolith {config.monolith_url}, "
            f"admin token in {config.var_dir / 'secrets' / 'admin_token'}; Ctrl-C stops\n"
        )
        while not stop.wait(poll_interval):
            if stack.dead():
                out.write(f"strangler up: {', '.join(stack.dead())} exited; stopping\n")
                return 1
    return 0
