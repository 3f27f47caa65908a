"""The outbox: a change and its event commit in ONE local transaction.

Both sides have a ``strangler_outbox`` table with the same columns. On the service
side the write path calls :meth:`OutboxSink.record` inside the transaction that
writes the row; on the monolith side database triggers insert the rows (see
``dualwrite`` capture). The relay reads pending events in ``id`` order per
aggregate key and applies them to the other store through the field mapping.

    sink = OutboxSink(context="catalog", origin="service")
    with Session(engine) as session, session.begin():
        session.add(product)
        session.flush()
        sink.record(session, table="products", operation="update", key=product.id,
                    row=row_image, request_id=request_id)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import (
    bindparam,
    func,
    insert,
    select,
)
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from migration_plans.core.outbox import NOTIFY_CHANNEL, EventStatus, Operation, Origin, outbox_table

SESSION_CONTEXTS = "strangler_outbox_contexts"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__} in an outbox payload")


def encode_payload(row: Mapping[str, Any] | None) -> str | None:
    """JSON text of a row image (decimals and UUIDs as strings, timestamps as UTC ISO 8601)."""
    if row is None:
        return None
    return json.dumps(dict(row), default=_json_default, sort_keys=True)


class ChangeSink(Protocol):
    """What a service's write path calls, inside its transaction, for every row it changes."""

    def record(
        self,
        session: Session,
        *,
        table: str,
        operation: Operation | str,
        key: int | str,
        row: Mapping[str, Any] | None,
        request_id: str | None = None,
    ) -> None: ...


class OutboxSink:
    """A :class:`ChangeSink` that appends an event to ``strangler_outbox`` in the same transaction."""

    def __init__(self, *, context: str, origin: Origin | str = Origin.SERVICE) -> None:
        self.context = context
        self.origin = Origin(origin)

    def record(
        self,
        session: Session,
        *,
        table: str,
        operation: Operation | str,
        key: int | str,
        row: Mapping[str, Any] | None,
        request_id: str | None = None,
    ) -> None:
        values = {
            "event_id": str(uuid.uuid4()),
            "context": self.context,
            "aggregate_type": table,
            "aggregate_key": str(key),
            "operation": Operation(operation).value,
            "payload": encode_payload(row),
            "origin": self.origin.value,
            "request_id": request_id,
            "status": EventStatus.PENDING.value,
            "attempts": 0,
            "created_at": datetime.now(UTC),
        }
        if session.get_bind().dialect.name == "postgresql":
            # One statement, one round trip: the event and the NOTIFY that wakes the relay.
            session.execute(_PG_RECORD, {**values, "notify_channel": NOTIFY_CHANNEL})
        else:
            session.execute(insert(outbox_table).values(**values))
        _announce_after_commit(session, self.context)


EVENT_COLUMNS = (
    "event_id",
    "context",
    "aggregate_type",
    "aggregate_key",
    "operation",
    "payload",
    "origin",
    "request_id",
    "created_at",
)
"""What an event is, in the outbox and in the dead-letter table alike."""
_RECORD_COLUMNS = (*EVENT_COLUMNS, "status", "attempts")

# INSERT ... SELECT <the event> FROM (SELECT pg_notify(channel, context)): the NOTIFY
# (delivered at commit, like the row) costs no round trip of its own.
_PG_RECORD = insert(outbox_table).from_select(
    list(_RECORD_COLUMNS),
    select(
        *(bindparam(name, type_=outbox_table.c[name].type) for name in _RECORD_COLUMNS)
    ).select_from(
        select(func.pg_notify(bindparam("notify_channel"), bindparam("context"))).subquery()
    ),
)

AfterCommitHook = Callable[[str], None]
_after_commit_hooks: list[AfterCommitHook] = []


def on_outbox_commit(hook: AfterCommitHook) -> None:
    """Call ``hook(context)`` after every commit that recorded events (the inline relay)."""
    if hook not in _after_commit_hooks:
        _after_commit_hooks.append(hook)


def off_outbox_commit(hook: AfterCommitHook) -> None:
    """Stop calling ``hook`` (see :func:`on_outbox_commit`)."""
    if hook in _after_commit_hooks:
        _after_commit_hooks.remove(hook)


def _announce_after_commit(session: Session, context: str) -> None:
    if not _after_commit_hooks:
        return
    session.info.setdefault(SESSION_CONTEXTS, set()).add(context)
    if not sa_event.contains(session, "after_commit", _after_commit):
        sa_event.listen(session, "after_commit", _after_commit)
        sa_event.listen(session, "after_soft_rollback", _after_rollback)


def _after_commit(session: Session) -> None:
    for context in session.info.pop(SESSION_CONTEXTS, set()):
        for hook in _after_commit_hooks:
            hook(context)


def _after_rollback(session: Session, previous_transaction: object) -> None:
    session.info.pop(SESSION_CONTEXTS, None)
