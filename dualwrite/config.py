"""Relay settings of one context, read once from the environment (same names as the services).

Each value is read from ``<CONTEXT>_<NAME>`` first, then ``STRANGLER_<NAME>``:

    CATALOG_DATABASE_URL              the service's database (default sqlite:///var/catalog.sqlite3)
    STRANGLER_MONOLITH_DATABASE_URL   the monolith's database (default sqlite:///var/monolith.sqlite3)
    STRANGLER_PHASE                   dual_write | split (default: the plan's phase)
    CATALOG_REVERSE_SYNC              split: relay service changes back to the monolith
    STRANGLER_RELAY_MAX_ATTEMPTS      failures before an event is dead-lettered (8)
    STRANGLER_RELAY_BACKOFF_BASE      first retry delay in seconds (0.5), doubled each time
    STRANGLER_RELAY_BACKOFF_MAX       cap of the retry delay (60)
    STRANGLER_RELAY_STALE_AFTER       re-dispatch a retry whose task was lost after this (120)

    settings = RelaySettings.from_env("catalog")
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from migration_plans.core.phase import Phase
from migration_plans.core.plan import load_plan
from migration_plans.core.settings import plan_path


class Direction(StrEnum):
    """Which outbox is read and which database is written."""

    MONOLITH_TO_SERVICE = "monolith_to_service"
    SERVICE_TO_MONOLITH = "service_to_monolith"

    @property
    def source(self) -> str:
        return "monolith" if self is Direction.MONOLITH_TO_SERVICE else "service"

    @property
    def target(self) -> str:
        return "service" if self is Direction.MONOLITH_TO_SERVICE else "monolith"


def env_value(context: str, name: str, default: str = "") -> str:
    """``<CONTEXT>_<NAME>``, else ``STRANGLER_<NAME>``, else ``default``."""
    for key in (f"{context.upper()}_{name}", f"STRANGLER_{name}"):
        value = os.environ.get(key, "").strip()
        if value:
            return value
    return default


def _plan_phase(context: str) -> tuple[Phase, bool]:
    path = plan_path(context)
    if not path.exists():
        return Phase.DUAL_WRITE, True
    plan = load_plan(path)
    return plan.phase, plan.reverse_sync


@dataclass(frozen=True)
class RelaySettings:
    """Everything the relay, its Celery tasks and the backfill need for one context."""

    context: str
    monolith_url: str
    service_url: str
    phase: Phase = Phase.DUAL_WRITE
    reverse_sync: bool = True
    max_attempts: int = 8
    backoff_base: float = 0.5
    backoff_max: float = 60.0
    stale_after: float = 120.0
    batch_size: int = 500
    poll_interval: float = 0.5

    @classmethod
    def from_env(cls, context: str, **overrides: Any) -> RelaySettings:
        plan_phase, plan_reverse = _plan_phase(context)
        phase = Phase(env_value(context, "PHASE", plan_phase.value))
        reverse = env_value(context, "REVERSE_SYNC", str(plan_reverse)).lower()
        settings = cls(
            context=context,
            monolith_url=env_value(
                context, "MONOLITH_DATABASE_URL", "sqlite:///var/monolith.sqlite3"
            ),
            service_url=os.environ.get(f"{context.upper()}_DATABASE_URL")
            or f"sqlite:///var/{context}.sqlite3",
            phase=phase,
            reverse_sync=reverse in {"1", "true", "yes", "on"},
            max_attempts=int(env_value(context, "RELAY_MAX_ATTEMPTS", "8")),
            backoff_base=float(env_value(context, "RELAY_BACKOFF_BASE", "0.5")),
            backoff_max=float(env_value(context, "RELAY_BACKOFF_MAX", "60")),
            stale_after=float(env_value(context, "RELAY_STALE_AFTER", "120")),
            batch_size=int(env_value(context, "RELAY_BATCH_SIZE", "500")),
            poll_interval=float(env_value(context, "RELAY_POLL_INTERVAL", "0.5")),
        )
        return replace(settings, **overrides)

    @property
    def truth(self) -> str:
        """The side whose version wins a conflict in this phase."""
        return "service" if self.phase is Phase.SPLIT else "monolith"

    @property
    def directions(self) -> tuple[Direction, ...]:
        """Directions that run: both in dual_write; in split, service -> monolith if reverse sync."""
        if self.phase is Phase.SHARED:
            return ()
        if self.phase is Phase.SPLIT:
            return (Direction.SERVICE_TO_MONOLITH,) if self.reverse_sync else ()
        return (Direction.MONOLITH_TO_SERVICE, Direction.SERVICE_TO_MONOLITH)

    def backoff(self, attempts: int) -> float:
        """Delay before retry number ``attempts`` (1-based): base * 2^(n-1), capped."""
        return float(min(self.backoff_max, self.backoff_base * (2 ** max(0, attempts - 1))))
