"""Settings of one proxy process: parsed once, frozen.

Secrets come from the environment: ``STRANGLER_ADMIN_TOKEN`` (the admin API's bearer
token; admin endpoints other than health are off without it) and
the variable named by the table's ``auth.identity_key_env`` (default
``STRANGLER_IDENTITY_KEY``; signs the identity header, read when a table is loaded).

    config = ProxyConfig.from_env(routes=Path("routes.yaml"), port=8000)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

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
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=0)
    max_header_bytes: int = Field(64 * 1024, ge=1024)
    max_path_length: int = Field(8192, ge=64)
    buffer_bytes: int = Field(64 * 1024, ge=0, description="bodies up to this are read whole")
    reload_interval: float = Field(0.5, gt=0)
    drain_seconds: float = Field(30.0, ge=0, description="old upstream pools close after")
    access_log: bool = True
    workers: int = Field(1, ge=1, le=64, description="processes sharing the listening socket")

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
