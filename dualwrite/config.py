"""Relay settings of one context, read once from the environment (same names as the services).

The plan, the database URLs, the phase and reverse sync come from
:class:`migration_plans.core.settings.ContextSettings`; each value is read from
``<CONTEXT>_<NAME>`` first, then ``STRANGLER_<NAME>``:

    CATALOG_DATABASE_URL              the service's database (default sqlite:///var/catalog.sqlite3)
    STRANGLER_MONOLITH_DATABASE_URL   the monolith's database (default sqlite:///var/monolith.sqlite3)
    STRANGLER_PHASE                   dual_write | split: pins the phase (default: the plan's
                                      phase until the control plane publishes one, which the
                                      relay and its tasks then follow: dualwrite.live)
    STRANGLER_LIVE_PHASE              off: do not follow the published phase either
    STRANGLER_CONTROL_DB_URL          where the published phase and the replica rows live
    CATALOG_REVERSE_SYNC              split: relay service changes back to the monolith
    STRANGLER_RELAY_MAX_ATTEMPTS      failures before an event is dead-lettered (8)
    STRANGLER_RELAY_BACKOFF_BASE      first retry delay in seconds (0.5), doubled each time
    STRANGLER_RELAY_BACKOFF_MAX       cap of the retry delay (60)
    STRANGLER_RELAY_STALE_AFTER       re-dispatch a retry whose task was lost after this (120)
    STRANGLER_RELAY_BATCH_SIZE        events a relay pass reads and applies at most (2000)
    STRANGLER_RELAY_PARTITIONS        relay workers per context, each owning a share of
                                      the keys (1; PostgreSQL only: dualwrite.partitions)

    settings = RelaySettings.from_env("catalog")
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from dualwrite.partitions import WHOLE, Partition, PartitionError
from migration_plans.core.phase import Phase, Side
from migration_plans.core.settings import ContextSettings, context_env


class Direction(StrEnum):
    """Which outbox is read and which database is written."""

    MONOLITH_TO_SERVICE = "monolith_to_service"
    SERVICE_TO_MONOLITH = "service_to_monolith"

    @classmethod
    def towards(cls, target: Side) -> Direction:
        """The direction whose writes land on ``target``."""
        return cls.MONOLITH_TO_SERVICE if target is Side.SERVICE else cls.SERVICE_TO_MONOLITH

    @property
    def source(self) -> Side:
        return self.target.other

    @property
    def target(self) -> Side:
        return Side.SERVICE if self is Direction.MONOLITH_TO_SERVICE else Side.MONOLITH


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
    batch_size: int = 2000
    poll_interval: float = 0.5
    partition: Partition = WHOLE

    @classmethod
    def from_env(cls, context: str, **overrides: Any) -> RelaySettings:
        """The settings of ``context``; :class:`ConfigError` names a missing plan file."""
        shared = ContextSettings.from_env(context)
        settings = cls(
            context=context,
            monolith_url=shared.monolith_url,
            service_url=shared.service_url,
            phase=shared.phase,
            reverse_sync=shared.reverse_sync,
            max_attempts=int(context_env(context, "RELAY_MAX_ATTEMPTS", "8")),
            backoff_base=float(context_env(context, "RELAY_BACKOFF_BASE", "0.5")),
            backoff_max=float(context_env(context, "RELAY_BACKOFF_MAX", "60")),
            stale_after=float(context_env(context, "RELAY_STALE_AFTER", "120")),
            batch_size=int(context_env(context, "RELAY_BATCH_SIZE", "2000")),
            poll_interval=float(context_env(context, "RELAY_POLL_INTERVAL", "0.5")),
            partition=Partition(count=int(context_env(context, "RELAY_PARTITIONS", "1"))),
        )
        settings = replace(settings, **overrides)
        settings.check_partition()
        return settings

    def check_partition(self) -> None:
        """Partitions need PostgreSQL's advisory locks; SQLite has one writer at a time."""
        if self.partition.whole:
            return
        for side, url in (("monolith", self.monolith_url), ("service", self.service_url)):
            if not url.startswith(("postgresql", "postgres")):
                raise PartitionError(
                    f"{self.context}: relay partitions need PostgreSQL; the {side} "
                    f"database is {url.split(':', 1)[0]} (run one relay, without --partitions)"
                )

    @property
    def truth(self) -> Side:
        """The side whose version wins a conflict in this phase."""
        return self.phase.source_of_truth

    @property
    def directions(self) -> tuple[Direction, ...]:
        """Directions that run: one towards each side the phase syncs (monolith -> service first)."""
        return tuple(Direction.towards(side) for side in self.phase.synced_sides(self.reverse_sync))

    def backoff(self, attempts: int) -> float:
        """Delay before retry number ``attempts`` (1-based): base * 2^(n-1), capped."""
        return float(min(self.backoff_max, self.backoff_base * (2 ** max(0, attempts - 1))))
