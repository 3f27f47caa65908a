"""Configuration every service shares, parsed once from the environment.

Each setting is read from ``<CONTEXT>_<NAME>`` first (``CATALOG_PHASE``), then from
``STRANGLER_<NAME>`` (``STRANGLER_PHASE``), so one variable can set all services
and a context-specific one overrides it::

    CATALOG_DATABASE_URL=postgresql://.../catalog   the service's own database
    STRANGLER_MONOLITH_DATABASE_URL=postgresql://.../monolith
    STRANGLER_PHASE=dual_write                      pins the phase: shared | dual_write | split
    STRANGLER_LIVE_PHASE=off                        serve the plan's phase, never follow
    STRANGLER_IDENTITY_KEY=...                      HMAC key shared with the proxy
    STRANGLER_ALLOWED_HOSTS=shop.example,.shop.example   Host values served (400 others)
    CATALOG_REVERSE_SYNC=false                      split only: no outbox events

Unless the phase is pinned (by the environment or by the caller) or ``LIVE_PHASE`` is
off, a running service follows the phase the control plane publishes
(:mod:`extracted_services.common.live`); ``phase`` is then the plan's, served as epoch 0
until a state is published.

    settings = CatalogSettings()
    settings.check_runnable()             # names every missing setting
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from migration_plans.core.http import LOOPBACK_HOSTS
from migration_plans.core.identity import DEV_IDENTITY_KEY
from migration_plans.core.phase import Phase
from migration_plans.core.settings import context_env, plan_for, plan_path

SHARED_PREFIX = "STRANGLER_"


class ConfigurationError(RuntimeError):
    """The environment does not describe a service that can run (names each setting)."""


class PlanSettingsSource(PydanticBaseSettingsSource):
    """Lowest-priority settings from the context's migration plan: its phase, reverse sync.

    The plan is the deployment's (:func:`migration_plans.core.settings.plan_for`, in
    ``STRANGLER_PLANS_DIR``, default ``./plans``); environment variables still win, so
    a test or an operator can pin a phase. No plan file: the field defaults.
    """

    def __init__(self, settings_cls: type[BaseSettings], context: str) -> None:
        super().__init__(settings_cls)
        self.context = context

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if not self.context or not plan_path(self.context).exists():
            return {}
        plan = plan_for(self.context)
        return {"phase": plan.phase.value, "reverse_sync": plan.reverse_sync}


class ServiceSettings(BaseSettings):
    """Settings of one extracted service; subclasses set ``context``."""

    context: ClassVar[str] = ""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    database_url: str = Field(
        default="",
        description="The service's own database (dual_write and split; always needed while "
        "the service follows the live phase).",
    )
    monolith_database_url: str = Field(
        default="",
        description="The monolith's database, read-only (shared; always needed while the "
        "service follows the live phase).",
    )
    phase: Phase = Phase.SHARED
    identity_key: str = Field(default="", description="HMAC key of the proxy's identity header.")
    allow_dev_identity_key: bool = Field(
        default=False, description="Development only: run with a well-known identity key."
    )
    reverse_sync: bool = Field(
        default=True, description="split: keep writing outbox events so the monolith stays current."
    )
    inline_relay: bool = Field(
        default=False,
        description="Apply this service's outbox events to the monolith right after each "
        "commit (dualwrite.inline), besides the relay loop: lower relay lag.",
    )
    shadow_writes: Literal["refuse", "sandbox"] = Field(
        default="refuse",
        description="Unsafe requests marked X-Strangler-Shadow (mirrored copies): refuse "
        "(403 shadow_write_refused) or sandbox (run in a transaction always rolled back, no "
        "outbox event).",
    )
    sql_echo: bool = False
    live_phase: bool = Field(
        default=True,
        description="Follow the phase the control plane publishes (off: serve the configured "
        "phase until restarted). A pinned phase is never followed.",
    )
    allowed_hosts: str = Field(
        default="",
        description="Comma-separated Host names (port ignored; '.example.com' covers its "
        "subdomains) served besides the loopback names, 'testserver' and the advertise "
        "URL's host; any other Host is refused with 400, so links are never built from it.",
    )
    advertise_url: str = Field(
        default="",
        description="The URL this process is reached at, registered with the control plane "
        "(strangler service serve sets it).",
    )
    _phase_pinned: bool = PrivateAttr(default=False)

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        # The plan's phase (the lowest source) is a default to follow from, not a pin.
        self._phase_pinned = "phase" in values or bool(context_env(self.context, "PHASE"))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        own = EnvSettingsSource(settings_cls, env_prefix=f"{cls.context.upper()}_")
        shared = EnvSettingsSource(settings_cls, env_prefix=SHARED_PREFIX)
        return (init_settings, own, shared, PlanSettingsSource(settings_cls, cls.context))

    @property
    def follows_live_phase(self) -> bool:
        """Whether a running service follows the published phase (not pinned, not turned off)."""
        return self.live_phase and not self._phase_pinned

    def problems(self) -> list[str]:
        """Why this configuration cannot serve requests (empty when it can)."""
        name = self.context.upper()
        found: list[str] = []
        if not self.identity_key and not self.allow_dev_identity_key:
            found.append(
                f"{name}_IDENTITY_KEY (or STRANGLER_IDENTITY_KEY) is not set: the service cannot "
                f"verify the proxy's identity header. Set it, or {name}_ALLOW_DEV_IDENTITY_KEY=true "
                "for local development."
            )
        if self.follows_live_phase:
            return found + self._live_phase_problems()
        if self.phase is Phase.SHARED and not self.monolith_database_url:
            found.append(
                f"{name}_MONOLITH_DATABASE_URL (or STRANGLER_MONOLITH_DATABASE_URL) is required "
                "in the shared phase: the service reads the monolith's tables."
            )
        if self.phase.owns_database and not self.database_url:
            found.append(
                f"{name}_DATABASE_URL is required in the {self.phase} phase: "
                "the service reads and writes its own database."
            )
        return found

    def _live_phase_problems(self) -> list[str]:
        name = self.context.upper()
        missing = [
            variable
            for variable, value in (
                (f"{name}_DATABASE_URL", self.database_url),
                (
                    f"{name}_MONOLITH_DATABASE_URL (or STRANGLER_MONOLITH_DATABASE_URL)",
                    self.monolith_database_url,
                ),
            )
            if not value
        ]
        if not missing:
            return []
        return [
            f"{' and '.join(missing)} must be set: the service follows the published phase "
            "and may switch to any phase, so it needs both databases. Set them, or pin the "
            f"phase with {name}_PHASE (or STRANGLER_PHASE), or STRANGLER_LIVE_PHASE=off."
        ]

    def check_runnable(self) -> None:
        """Raise :class:`ConfigurationError` naming every missing setting."""
        found = self.problems()
        if found:
            raise ConfigurationError("; ".join(found))

    @property
    def hosts(self) -> tuple[str, ...]:
        """Every Host name this service answers for (see ``allowed_hosts``)."""
        extra = [name.strip() for name in self.allowed_hosts.split(",") if name.strip()]
        advertised = urlsplit(self.advertise_url).hostname if self.advertise_url else None
        if advertised and ":" in advertised:
            advertised = f"[{advertised}]"
        return (*LOOPBACK_HOSTS, "testserver", *([advertised] if advertised else []), *extra)

    @property
    def identity_secret(self) -> bytes:
        """The key identity headers are verified with."""
        return (self.identity_key or DEV_IDENTITY_KEY).encode()
