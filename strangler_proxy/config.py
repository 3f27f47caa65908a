"""Settings of one proxy process: parsed once, frozen.

Secrets come from the environment: ``STRANGLER_ADMIN_TOKEN`` (the admin API's bearer
token; admin endpoints other than health are off without it),
the variable named by the table's ``auth.identity_key_env`` (default
``STRANGLER_IDENTITY_KEY``; signs the identity header, read when a table is loaded) and
``STRANGLER_CANARY_KEY`` (keys the canary hash; the same on every replica).
The proxy follows the live phase in the control database (``STRANGLER_CONTROL_DB_URL``)
unless ``STRANGLER_LIVE_PHASE=off``. The client-connection, dashboard-session, sign-in
throttling and upstream-pool settings default to ``STRANGLER_<FIELD NAME>`` when set (e.g.
``STRANGLER_UPSTREAM_POOL_WAIT_SECONDS=2``; docs/reference/limits.md lists them).

    config = ProxyConfig.from_env(routes=Path("routes.yaml"), port=8000)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from migration_plans.core.control_db import control_db_url
from migration_plans.core.live_phase import live_phase_enabled
from migration_plans.core.yamlfile import MAX_YAML_BYTES
from strangler_proxy.edge.limits import check_max_connections, default_max_connections
from strangler_proxy.routing import SlashPolicy

ADMIN_TOKEN_ENV = "STRANGLER_ADMIN_TOKEN"
MIN_SECRET_LENGTH = 16


class ProxyConfig(BaseModel):
    """Everything the proxy needs besides the route table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    routes: Path
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    admin_prefix: str = "/_strangler/"
    admin_token: SecretStr | None = None
    slashes: SlashPolicy = SlashPolicy.REJECT
    reject_double_encoded: bool = Field(
        True, description="400 for %25-encoded dot segments, slashes and backslashes"
    )
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=0)
    max_header_bytes: int = Field(
        default_factory=lambda: _env("max_header_bytes", 64 * 1024),
        validate_default=True,
        ge=1024,
        le=16 * 1024 * 1024,
        description="request head, and a chunked body's chunk lines and trailers, then 431",
    )
    max_path_length: int = Field(8192, ge=64)
    # -- client connections at the edge (each from STRANGLER_<NAME>) --
    max_target_bytes: int = Field(
        default_factory=lambda: _env("max_target_bytes", 16 * 1024),
        validate_default=True,
        ge=256,
        le=1024 * 1024,
        description="request-target (path and query) counted as it arrives, then 414",
    )
    client_header_timeout_seconds: float = Field(
        default_factory=lambda: _env("client_header_timeout_seconds", 10.0),
        validate_default=True,
        gt=0,
        le=3600,
        description="the head must arrive within this of accept (later: of its first byte)",
    )
    client_body_idle_seconds: float = Field(
        default_factory=lambda: _env("client_body_idle_seconds", 30.0),
        validate_default=True,
        gt=0,
        le=3600,
        description="a request body with no byte for this long is cut (408)",
    )
    client_idle_seconds: float = Field(
        default_factory=lambda: _env("client_idle_seconds", 30.0),
        validate_default=True,
        gt=0,
        le=3600,
        description="a connection serving no request closes after this long silent",
    )
    max_connections: int | None = Field(
        default_factory=lambda: _env("max_connections", None),
        validate_default=True,
        ge=1,
        description="client connections per process (default: RLIMIT_NOFILE less a reserve)",
    )
    max_connections_per_client: int = Field(
        default_factory=lambda: _env("max_connections_per_client", 256),
        validate_default=True,
        ge=1,
        le=1_000_000,
        description="client connections per process from one address, then 503",
    )
    buffer_bytes: int = Field(64 * 1024, ge=0, description="bodies up to this are read whole")
    reload_interval: float = Field(0.5, gt=0)
    max_table_bytes: int = Field(
        MAX_YAML_BYTES, ge=1024, description="route files larger than this are refused"
    )
    drain_seconds: float = Field(30.0, ge=0, description="old upstream pools close after")
    access_log: bool = True
    workers: int = Field(1, ge=1, le=64, description="processes sharing the listening socket")
    live_phase: bool = Field(
        default_factory=live_phase_enabled,
        description="follow the published phase, fence writes, acknowledge epochs",
    )
    control_db_url: str | None = Field(
        default_factory=control_db_url, description="where the phase is published (None: off)"
    )
    advertise_url: str = Field("", description="this proxy's URL in the replica registry")
    fence_queue: int = Field(
        1000, ge=0, le=100_000, description="writes held by a fence per process, then 503"
    )
    # -- dashboard sessions and admin sign-in throttling (each from STRANGLER_<NAME>) --
    dashboard_session_idle_seconds: float = Field(
        default_factory=lambda: _env("dashboard_session_idle_seconds", 8 * 3600),
        validate_default=True,
        ge=60,
        le=7 * 86400,
        description="a dashboard session unused this long ends",
    )
    dashboard_session_max_seconds: float = Field(
        default_factory=lambda: _env("dashboard_session_max_seconds", 24 * 3600),
        validate_default=True,
        ge=60,
        le=30 * 86400,
        description="a dashboard session ends this long after sign-in, used or not",
    )
    dashboard_secure_cookie: bool = Field(
        default_factory=lambda: _env("dashboard_secure_cookie", False),
        validate_default=True,
        description="mark the session cookie Secure (TLS terminated in front of the proxy)",
    )
    auth_failures_per_minute: float = Field(
        default_factory=lambda: _env("auth_failures_per_minute", 5),
        validate_default=True,
        gt=0,
        le=600,
        description="failed admin sign-ins/bearer tokens an address gets back per minute",
    )
    auth_failures_burst: int = Field(
        default_factory=lambda: _env("auth_failures_burst", 5),
        validate_default=True,
        ge=1,
        le=1000,
        description="failed attempts an address may make in a row before 429",
    )
    auth_throttle_clients: int = Field(
        default_factory=lambda: _env("auth_throttle_clients", 10_000),
        validate_default=True,
        ge=1,
        le=1_000_000,
        description="client addresses whose failures are remembered (least recent dropped)",
    )
    # -- the upstream pools (each from STRANGLER_<NAME>) --
    upstream_pool_wait_seconds: float = Field(
        default_factory=lambda: _env("upstream_pool_wait_seconds", 5.0),
        validate_default=True,
        gt=0,
        le=300,
        description="wait this long for a pooled connection, then 503 upstream_busy",
    )
    upstream_body_idle_seconds: float = Field(
        default_factory=lambda: _env("upstream_body_idle_seconds", 30.0),
        validate_default=True,
        gt=0,
        le=3600,
        description="a streamed upload silent this long is cut (408, connection discarded)",
    )
    upstream_route_share: float = Field(
        default_factory=lambda: _env("upstream_route_share", 0.8),
        validate_default=True,
        gt=0,
        le=1,
        description="share of an upstream's pool one route may hold; beyond it 503 at once",
    )

    @model_validator(mode="before")
    @classmethod
    def _advertise(cls, values: Any) -> Any:
        """``advertise_url`` defaults to ``http://{host}:{port}``."""
        if isinstance(values, dict) and not values.get("advertise_url"):
            host = str(values.get("host", "127.0.0.1"))
            netloc = f"[{host}]" if ":" in host else host
            values = {**values, "advertise_url": f"http://{netloc}:{values.get('port', 8000)}"}
        return values

    @field_validator("admin_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("admin prefix must start with '/'")
        return value if value.endswith("/") else value + "/"

    @field_validator("admin_token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(f"admin token must be at least {MIN_SECRET_LENGTH} characters")
        return value

    @field_validator("max_connections")
    @classmethod
    def _fd_budget(cls, value: int | None) -> int | None:
        if value is not None:
            check_max_connections(value)
        return value

    @property
    def connection_cap(self) -> int:
        """``max_connections``, or the default derived from this process's fd limit."""
        return self.max_connections or default_max_connections()

    @model_validator(mode="after")
    def _session_bounds(self) -> ProxyConfig:
        if self.dashboard_session_idle_seconds > self.dashboard_session_max_seconds:
            raise ValueError(
                "dashboard_session_idle_seconds must not exceed dashboard_session_max_seconds"
            )
        return self

    @classmethod
    def from_env(cls, **values: Any) -> ProxyConfig:
        """Settings from keyword arguments plus the secrets in the environment."""
        token = os.environ.get(ADMIN_TOKEN_ENV)
        return cls(admin_token=SecretStr(token) if token else None, **values)


def _env(field: str, default: Any) -> Any:
    """``STRANGLER_<FIELD>`` from the environment, else ``default`` (validated by the field)."""
    return os.environ.get(f"STRANGLER_{field.upper()}", default)
