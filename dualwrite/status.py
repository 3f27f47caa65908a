"""What ``strangler dualwrite status`` shows per context, read from both databases.

status = collect_status(relay)
status.as_dict()   # {"context": "catalog", "monolith": {"pending": 0, ...}, ...}

:func:`outbox_backlog` is the cheap question a transition asks inside a write fence:
what each direction still owes, whatever the phase (one indexed count per outbox).

    outbox_backlog(relay)[Direction.SERVICE_TO_MONOLITH].drained
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, inspect, select, tuple_
from sqlalchemy.exc import DBAPIError

from dualwrite.config import Direction
from dualwrite.exceptions import StoreUnavailable
from dualwrite.metrics import DEAD_LETTERS, PENDING
from dualwrite.relay import BLOCKING, Relay
from dualwrite.schema import backfill_key_table, backfill_table, dead_letter_table
from migration_plans.core.outbox import EventStatus, outbox_table


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (``None`` for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def _aware(moment: Any) -> datetime:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


BLOCKED_LISTED = 50
"""Blocked keys listed per outbox (oldest blocking event first)."""


@dataclass
class BlockedKey:
    """A key whose event is dead-lettered or waits for a retry: its later events wait too."""

    aggregate_type: str
    aggregate_key: str
    event: int
    status: str
    attempts: int
    reason: str
    waiting: int


@dataclass
class OutboxStatus:
    """One side's outbox: events waiting, retried, dead, blocked keys, and relay speed."""

    side: str
    reachable: bool = True
    pending: int = 0
    in_flight: int = 0
    dead: int = 0
    applied: int = 0
    superseded: int = 0
    lag_p50_ms: float | None = None
    lag_p99_ms: float | None = None
    error: str | None = None
    blocked: list[BlockedKey] = field(default_factory=list)


@dataclass
class ContextStatus:
    context: str
    phase: str
    directions: list[str]
    monolith: OutboxStatus
    service: OutboxStatus
    backfill: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _outbox_status(conn: Connection, side: str, context: str, sample: int) -> OutboxStatus:
    status = OutboxStatus(side=side)
    counts = conn.execute(
        select(outbox_table.c.status, func.count())
        .where(outbox_table.c.context == context)
        .group_by(outbox_table.c.status)
    ).all()
    by_status = {row[0]: int(row[1]) for row in counts}
    status.pending = by_status.get(EventStatus.PENDING.value, 0)
    status.in_flight = by_status.get(EventStatus.IN_FLIGHT.value, 0)
    status.applied = by_status.get(EventStatus.APPLIED.value, 0)
    status.superseded = by_status.get("superseded", 0)
    status.dead = int(
        conn.execute(
            select(func.count())
            .select_from(dead_letter_table)
            .where(dead_letter_table.c.context == context)
        ).scalar_one()
    )
    recent = conn.execute(
        select(outbox_table.c.created_at, outbox_table.c.applied_at)
        .where(
            outbox_table.c.context == context,
            outbox_table.c.status == EventStatus.APPLIED.value,
        )
        .order_by(outbox_table.c.id.desc())
        .limit(sample)
    ).all()
    lags = [
        (_aware(applied) - _aware(created)).total_seconds() * 1000
        for created, applied in recent
        if applied is not None
    ]
    status.lag_p50_ms = percentile(lags, 0.50)
    status.lag_p99_ms = percentile(lags, 0.99)
    status.blocked = blocked_keys(conn, context)
    return status


def blocked_keys(conn: Connection, context: str, limit: int = BLOCKED_LISTED) -> list[BlockedKey]:
    """Keys of ``context`` held back by a dead or retrying event, with the events behind it."""
    heads = conn.execute(
        select(
            outbox_table.c.id,
            outbox_table.c.aggregate_type,
            outbox_table.c.aggregate_key,
            outbox_table.c.status,
            outbox_table.c.attempts,
            outbox_table.c.last_error,
        )
        .where(outbox_table.c.context == context, outbox_table.c.status.in_(BLOCKING))
        .order_by(outbox_table.c.id)
        .limit(limit)
    ).all()
    if not heads:
        return []
    keys = sorted({(row[1], row[2]) for row in heads})
    waiting = conn.execute(
        select(outbox_table.c.aggregate_type, outbox_table.c.aggregate_key, func.count())
        .where(
            outbox_table.c.context == context,
            outbox_table.c.status == EventStatus.PENDING.value,
            tuple_(outbox_table.c.aggregate_type, outbox_table.c.aggregate_key).in_(keys),
        )
        .group_by(outbox_table.c.aggregate_type, outbox_table.c.aggregate_key)
    ).all()
    behind = {(row[0], row[1]): int(row[2]) for row in waiting}
    return [
        BlockedKey(
            aggregate_type=row[1],
            aggregate_key=row[2],
            event=int(row[0]),
            status=row[3],
            attempts=int(row[4] or 0),
            reason=row[5] or "",
            waiting=behind.get((row[1], row[2]), 0),
        )
        for row in heads
    ]


def _side(relay: Relay, side: str, sample: int) -> OutboxStatus:
    try:
        with relay._guarded(side) as conn:
            return _outbox_status(conn, side, relay.context, sample)
    except (StoreUnavailable, Exception) as exc:
        return OutboxStatus(side=side, reachable=False, error=str(exc).splitlines()[0])


def _backfill(relay: Relay) -> list[dict[str, Any]]:
    try:
        with relay._guarded("service") as conn:
            rows = [
                dict(row)
                for row in conn.execute(
                    select(backfill_table)
                    .where(backfill_table.c.context == relay.context)
                    .order_by(backfill_table.c.started_at)
                ).mappings()
            ]
            if rows and inspect(conn).has_table(backfill_key_table.name):
                # Tables whose key is not one integer column keep their position as key text.
                texts = dict(
                    conn.execute(
                        select(
                            backfill_key_table.c.table_name, backfill_key_table.c.last_key
                        ).where(backfill_key_table.c.context == relay.context)
                    ).all()
                )
                for row in rows:
                    row["last_key"] = texts.get(row["table_name"], row["last_key"])
            return rows
    except Exception:
        return []


def collect_status(relay: Relay, *, sample: int = 1000) -> ContextStatus:
    """Both outboxes, dead letters, relay lag over the last ``sample`` events, backfill."""
    status = ContextStatus(
        context=relay.context,
        phase=relay.settings.phase.value,
        directions=[direction.value for direction in relay.settings.directions],
        monolith=_side(relay, "monolith", sample),
        service=_side(relay, "service", sample),
        backfill=_backfill(relay),
    )
    for side in (status.monolith, status.service):
        PENDING.labels(relay.context, side.side).set(side.pending + side.in_flight)
        DEAD_LETTERS.labels(relay.context, side.side).set(side.dead)
    return status


@dataclass(frozen=True)
class Backlog:
    """What one direction still owes: events pending, waiting for a retry, dead-lettered."""

    pending: int = 0
    in_flight: int = 0
    dead: int = 0

    @property
    def open(self) -> int:
        """Events the relay or a retry will still apply."""
        return self.pending + self.in_flight

    @property
    def drained(self) -> bool:
        """Nothing owed: no open event and no dead letter (a dead event never arrived)."""
        return self.open == 0 and self.dead == 0

    def as_dict(self) -> dict[str, int]:
        return {"pending": self.pending, "in_flight": self.in_flight, "dead": self.dead}


_BACKLOG = (
    select(outbox_table.c.status, func.count())
    .where(
        outbox_table.c.status.in_(
            [EventStatus.PENDING.value, EventStatus.IN_FLIGHT.value, EventStatus.DEAD.value]
        ),
        outbox_table.c.context == bindparam("ctx"),
    )
    .group_by(outbox_table.c.status)
)
"""One count per outbox, on the (status, id) index: open and dead events are few."""


def outbox_backlog(
    relay: Relay, directions: Iterable[Direction] = tuple(Direction)
) -> dict[Direction, Backlog]:
    """The backlog of each of ``directions`` (default both), read from its source outbox.

    Independent of the phase the relay serves. An event counts as in flight while a
    Celery task owns it, until its apply has committed. A database that answers but
    has no outbox table (nothing was ever captured there) owes nothing. Raises
    :class:`StoreUnavailable` when an outbox cannot be read: an unknown backlog is
    never an empty one.
    """
    backlog = {}
    for direction in directions:
        try:
            counts = _backlog_counts(relay, direction)
        except (StoreUnavailable, DBAPIError) as exc:
            if _has_outbox(relay, direction):
                raise StoreUnavailable(str(exc)) from exc
            counts = {}
        backlog[direction] = Backlog(
            pending=counts.get(EventStatus.PENDING.value, 0),
            in_flight=counts.get(EventStatus.IN_FLIGHT.value, 0),
            dead=counts.get(EventStatus.DEAD.value, 0),
        )
    return backlog


def _backlog_counts(relay: Relay, direction: Direction) -> dict[str, int]:
    with relay._reading(direction.source) as conn:
        # SQLite: a reader must not queue for the write lock the writers hold.
        conn.execution_options(sqlite_begin="DEFERRED")
        rows = conn.execute(_BACKLOG, {"ctx": relay.context}).all()
    return {str(row[0]): int(row[1]) for row in rows}


def _has_outbox(relay: Relay, direction: Direction) -> bool:
    """Whether the source side of ``direction`` has an outbox table (StoreUnavailable if
    the database itself does not answer)."""
    with relay._reading(direction.source) as conn:
        return inspect(conn).has_table(outbox_table.name)
