"""Settings of one proxy process: parsed once, frozen.

Secrets come from the environment: ``STRANGLER_ADMIN_TOKEN`` (the admin API's bearer
token; admin endpoints other than health are off without it) and
the variable named by the table's ``auth.identity_key_env`` (default
``STRANGLER_IDENTITY_KEY``; signs the identity header, read when a table is loaded).
The proxy follows the live phase in the control database (``STRANGLER_CONTROL_DB_URL``)
unless ``STRANGLER_LIVE_PHASE=off``.

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
    max_header_bytes: int = Field(64 * 1024, ge=1024)
    max_path_length: int = Field(8192, ge=64)
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

    @classmethod
    def from_env(cls, **values: Any) -> ProxyConfig:
        """Settings from keyword arguments plus the secrets in the environment."""
        token = os.environ.get(ADMIN_TOKEN_ENV)
        return cls(admin_token=SecretStr(token) if token else None, **values)
