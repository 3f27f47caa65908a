"""Which divergent keys have a dual-write event still on its way ("in flight"), and
which have one that will not arrive by itself ("stuck").

A divergence whose key has a pending outbox event is the relay's work in progress,
not lost data. But an event that was dead-lettered, or has waited longer than
``stuck_after`` seconds, is not on its way: its key is divergent, and the reason
says which event and why. The default source asks the ``strangler_outbox`` table
of both databases (when it exists) for events of the pair that are not applied yet.

    pending = OutboxPending(monolith_engine, service_engine, stuck_after=300)
    pending.pending_keys(pair_mapping, [1, 2, 3])    # -> {2}
    pending.stuck_keys(pair_mapping, [1, 2, 3])      # -> {3: "event 7 dead-lettered in ..."}
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from migration_plans.core.idmap import service_keys
from migration_plans.core.mapping import TableMapping
from migration_plans.core.outbox import OPEN_STATUSES, OUTBOX_TABLE, EventStatus
from reconciler.diff import Key
from reconciler.schema import UNMAPPED

STUCK_AFTER_S = 300.0
"""An event unapplied for longer than this is stuck, not in flight (default)."""


class PendingChanges(Protocol):
    """Keys of ``table`` that have a change not yet applied to the other side."""

    def pending_keys(self, table: TableMapping, keys: Sequence[Key]) -> set[Key]: ...

    def stuck_keys(self, table: TableMapping, keys: Sequence[Key]) -> dict[Key, str]:
        """Keys whose change will not arrive by itself (dead-lettered, or waiting too long),
        each with the reason."""
        ...


class NoPending:
    """Nothing is ever in flight (no dual-write)."""

    def pending_keys(self, table: TableMapping, keys: Sequence[Key]) -> set[Key]:
        return set()

    def stuck_keys(self, table: TableMapping, keys: Sequence[Key]) -> dict[Key, str]:
        return {}


_outbox = sa.table(
    OUTBOX_TABLE,
    sa.column("id"),
    sa.column("aggregate_type"),
    sa.column("aggregate_key"),
    sa.column("operation"),
    sa.column("status"),
    sa.column("attempts"),
    sa.column("last_error"),
    sa.column("created_at"),
)
_UNAPPLIED = (*OPEN_STATUSES, EventStatus.DEAD.value)


class OutboxPending:
    """Reads ``strangler_outbox`` on each database that has one (monolith, then service).

    An event counts when its ``aggregate_type`` is the pair's name or either table
    name, its ``aggregate_key`` is the key as text, and its ``status`` is
    ``pending`` or ``in_flight`` (in flight while younger than ``stuck_after`` seconds,
    stuck after that) or ``dead`` (stuck).
    """

    def __init__(self, *engines: Engine, stuck_after: float = STUCK_AFTER_S) -> None:
        self.engines = engines
        self.stuck_after = stuck_after

    def pending_keys(self, table: TableMapping, keys: Sequence[Key]) -> set[Key]:
        if not keys:
            return set()
        types = [table.name, table.monolith_table, table.service_table]
        found: set[Key] = set()
        for index, engine in enumerate(self.engines):
            try:
                if not sa.inspect(engine).has_table(OUTBOX_TABLE):
                    continue
                wanted = self._wanted(index, engine, table, keys)
                query = (
                    sa.select(_outbox.c.aggregate_key)
                    .where(_outbox.c.aggregate_type.in_(types))
                    .where(_outbox.c.status.in_(OPEN_STATUSES))
                    .where(_outbox.c.aggregate_key.in_(list(wanted)))
                    .distinct()
                )
                with engine.connect() as conn:
                    found.update(wanted[key] for (key,) in conn.execute(query))
            except SQLAlchemyError:
                continue
        return found

    def stuck_keys(self, table: TableMapping, keys: Sequence[Key]) -> dict[Key, str]:
        """Keys with a dead-lettered event, or one unapplied beyond ``stuck_after``."""
        if not keys:
            return {}
        types = [table.name, table.monolith_table, table.service_table]
        cutoff = datetime.now(UTC) - timedelta(seconds=self.stuck_after)
        found: dict[Key, str] = {}
        sides = ("monolith", "service") if len(self.engines) == 2 else ()
        for index, engine in enumerate(self.engines):
            side = sides[index] if sides else f"database {index + 1}"
            try:
                wanted = self._wanted(index, engine, table, keys)
            except SQLAlchemyError:
                continue
            for row in self._unapplied(engine, types, list(wanted)):
                reason = _stuck_reason(row, side, cutoff, self.stuck_after)
                key = wanted[row["aggregate_key"]]
                if reason and key not in found:
                    found[key] = reason
        return found

    def _wanted(
        self, index: int, engine: Engine, table: TableMapping, keys: Sequence[Key]
    ) -> dict[str, Key]:
        """The outbox key text of each reported key on this database. An id-map pair's
        service events name service keys: the map gives the service key of a monolith
        key, and an unmapped key reports its own (``UNMAPPED`` + it)."""
        wanted = {str(key): key for key in keys}
        if not (table.key.id_map and len(self.engines) == 2 and index == 1):
            return wanted
        own = {
            text.removeprefix(UNMAPPED): key
            for text, key in wanted.items()
            if text.startswith(UNMAPPED)
        }
        with engine.connect() as conn:
            monolith = [text for text in wanted if not text.startswith(UNMAPPED)]
            mapped = service_keys(conn, table.name, monolith)
        return {**{service: wanted[monolith] for monolith, service in mapped.items()}, **own}

    def _unapplied(self, engine: Engine, types: list[str], keys: list[str]) -> list[Any]:
        query = (
            sa.select(_outbox)
            .where(_outbox.c.aggregate_type.in_(types))
            .where(_outbox.c.status.in_(_UNAPPLIED))
            .where(_outbox.c.aggregate_key.in_(keys))
            .order_by(_outbox.c.id)
        )
        try:
            if not sa.inspect(engine).has_table(OUTBOX_TABLE):
                return []
            with engine.connect() as conn:
                return list(conn.execute(query).mappings())
        except SQLAlchemyError:
            return []


def _aware(moment: Any) -> datetime | None:
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            return None
    if not isinstance(moment, datetime):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _stuck_reason(row: Any, side: str, cutoff: datetime, stuck_after: float) -> str | None:
    """Why the event of ``row`` will not arrive by itself, or None while it is in flight."""
    what = f"{row['operation']} event {row['id']} in the {side} outbox"
    error = f": {row['last_error']}" if row["last_error"] else ""
    if row["status"] == EventStatus.DEAD.value:
        return f"{what} dead-lettered after {row['attempts']} attempt(s){error}"
    created = _aware(row["created_at"])
    if created is None or created >= cutoff:
        return None
    return (
        f"{what} {row['status']} since {created.isoformat()} "
        f"(over {stuck_after:g}s, {row['attempts']} attempt(s)){error}"
    )
