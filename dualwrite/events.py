"""An outbox row as the relay sees it, and what applying it did."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import Any, ClassVar

from sqlalchemy import Row


class Outcome(StrEnum):
    """What applying one event did to the other side."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"  # this event (or a later one) was applied before: no change
    SUPERSEDED = "superseded"  # the source of truth changed the row since: truth wins


@dataclass(frozen=True)
class Event:
    """One ``strangler_outbox`` row."""

    id: int
    event_id: str
    context: str
    aggregate_type: str
    aggregate_key: str
    operation: str
    payload: str | None
    origin: str
    request_id: str | None
    status: str
    attempts: int
    created_at: datetime

    COLUMNS: ClassVar[tuple[str, ...]]
    """The outbox columns in field order: ``Event(*row)`` for a row of these (PostgreSQL)."""

    @classmethod
    def from_row(cls, row: Row[Any]) -> Event:
        values = dict(row._mapping)
        created = values["created_at"]
        if isinstance(created, str):
            created = datetime.fromisoformat(created)
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        values["created_at"] = created
        return cls(*(values[name] for name in cls.COLUMNS))

    @classmethod
    def from_values(cls, values: tuple[Any, ...]) -> Event:
        """An event from a row of :attr:`COLUMNS` as the driver returns it (the relay's
        pending read on PostgreSQL: thousands a batch, so the frozen dataclass's
        ``__init__``, one ``object.__setattr__`` per field, is skipped)."""
        event = object.__new__(cls)
        event.__dict__.update(zip(cls.COLUMNS, values, strict=True))
        return event

    @cached_property
    def key(self) -> tuple[str, str]:
        """(aggregate type, aggregate key), computed once (the relay asks it often)."""
        return (self.aggregate_type, self.aggregate_key)

    @property
    def request(self) -> str:
        """The X-Request-ID to log and propagate (never empty)."""
        return self.request_id or f"event-{self.event_id}"

    def image(self) -> dict[str, Any]:
        """The row image of the payload (decimals exact)."""
        if self.payload is None:
            return {}
        return dict(json.loads(self.payload, parse_float=Decimal))


Event.COLUMNS = tuple(column.name for column in fields(Event))


@dataclass(frozen=True)
class Applied:
    """An event and its outcome."""

    event: Event
    outcome: Outcome
