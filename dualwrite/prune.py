"""Pruning: relayed events older than a retention leave both outboxes.

At 200 writes/s an outbox grows by 17 million rows a day. An applied (or superseded)
event is history: per-row ordering lives in the applied-events table, one row per
aggregate, so deleting relayed events changes nothing the relay reads. Pending,
in-flight and dead events are never touched (dead ones wait for ``strangler
dualwrite retry-dead``). The newest event of each outbox is always kept: SQLite
hands out the largest rowid again once it is deleted, and an event id below one
already applied would be taken for a stale event.

    deleted = prune_outboxes(relay, older_than=timedelta(days=7))   # {"monolith": n, ...}
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, func, select

from dualwrite.relay import SUPERSEDED, Relay
from migration_plans.core.outbox import EventStatus, outbox_table

__all__ = ["PRUNABLE_STATUSES", "parse_retention", "prune_outbox", "prune_outboxes"]

PRUNABLE_STATUSES = (EventStatus.APPLIED.value, SUPERSEDED)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_retention(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d`` (or seconds: ``90s``) as a :class:`timedelta`."""
    value, unit = text.strip()[:-1], text.strip()[-1:].lower()
    if unit not in _UNITS or not value.isdigit():
        raise ValueError(f"{text!r} is not a retention like 30m, 12h or 7d")
    return timedelta(seconds=int(value) * _UNITS[unit])


def prune_outbox(
    engine: Engine,
    context: str,
    *,
    older_than: timedelta,
    batch_size: int = 10_000,
    now: datetime | None = None,
) -> int:
    """Delete ``context``'s relayed events created before ``now - older_than``; the count.

    Deletes in batches of ``batch_size``, one transaction each, so the relay's
    writes never wait behind one long delete.
    """
    if older_than < timedelta(0):
        raise ValueError(f"older_than must not be negative, got {older_than}")
    cutoff = (now or datetime.now(UTC)) - older_than
    table = outbox_table
    with engine.begin() as conn:
        newest = conn.execute(
            select(func.max(table.c.id)).where(table.c.context == context)
        ).scalar_one()
    if newest is None:
        return 0
    doomed = (
        select(table.c.id)
        .where(
            table.c.context == context,
            table.c.status.in_(PRUNABLE_STATUSES),
            table.c.created_at < cutoff,
            table.c.id < newest,
        )
        .order_by(table.c.id)
        .limit(batch_size)
        .scalar_subquery()
    )
    deleted = 0
    while True:
        with engine.begin() as conn:
            count = conn.execute(delete(table).where(table.c.id.in_(doomed))).rowcount
        deleted += count
        if count < batch_size:
            return deleted


def prune_outboxes(
    relay: Relay, *, older_than: timedelta, batch_size: int = 10_000
) -> dict[str, int]:
    """Prune the monolith's and the service's outbox of ``relay.context``: counts per side."""
    now = datetime.now(UTC)
    return {
        side: prune_outbox(
            relay.engines[side],
            relay.context,
            older_than=older_than,
            batch_size=batch_size,
            now=now,
        )
        for side in ("monolith", "service")
    }
