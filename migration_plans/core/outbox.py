"""The outbox contract both sides share: the ``strangler_outbox`` table, its statuses,
operations and origins.

The services write events into it (through :mod:`dualwrite.outbox`), the monolith's
capture triggers insert into it, the relay drains it, and the reconciler reads it to
tell a change in flight from a divergence.

    select(outbox_table.c.aggregate_key).where(outbox_table.c.status.in_(OPEN_STATUSES))
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
)

__all__ = [
    "KEY_TEXT_LENGTH",
    "NOTIFY_CHANNEL",
    "OPEN_STATUSES",
    "OUTBOX_TABLE",
    "EventStatus",
    "Operation",
    "Origin",
    "outbox_metadata",
    "outbox_table",
]

OUTBOX_TABLE = "strangler_outbox"
KEY_TEXT_LENGTH = 512
"""Longest key text (``aggregate_key``) the outbox and the relay's tables hold: a composite
key's parts joined (:meth:`migration_plans.core.keys.KeyMapping.text_of`) fit easily; a
longer one fails the write that makes its event, with the column named."""
NOTIFY_CHANNEL = "strangler_outbox"


class Operation(StrEnum):
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"


class EventStatus(StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    APPLIED = "applied"
    DEAD = "dead"


OPEN_STATUSES = (EventStatus.PENDING.value, EventStatus.IN_FLIGHT.value)
"""Statuses of an event not yet applied to the other side."""


class Origin(StrEnum):
    """Who produced a change. Changes applied by the relay are never captured again."""

    SERVICE = "service"
    MONOLITH = "monolith"
    RELAY = "relay"


outbox_metadata = MetaData()

outbox_table = Table(
    OUTBOX_TABLE,
    outbox_metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    # Unique by construction ('m-<id>' from the capture triggers, a UUID from the services),
    # so no unique index: the capture and every mark of an event would maintain it.
    Column("event_id", String(36), nullable=False),
    Column("context", String(64), nullable=False),
    Column("aggregate_type", String(64), nullable=False),
    Column("aggregate_key", String(KEY_TEXT_LENGTH), nullable=False),
    Column("operation", String(8), nullable=False),
    Column("payload", Text, nullable=True),
    Column("origin", String(16), nullable=False),
    Column("request_id", String(128), nullable=True),
    Column("status", String(16), nullable=False, server_default=EventStatus.PENDING.value),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("applied_at", DateTime(timezone=True), nullable=True),
    Index("ix_strangler_outbox_status_id", "status", "id"),
    Index("ix_strangler_outbox_aggregate", "aggregate_type", "aggregate_key", "id"),
)
