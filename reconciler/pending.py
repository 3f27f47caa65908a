"""Which divergent keys have a dual-write event still on its way ("in flight").

A divergence whose key has a pending outbox event is the relay's work in progress,
not lost data. The default source asks the ``strangler_outbox`` table of both
databases (when it exists) for events of the pair that are not applied yet.

    pending = OutboxPending(monolith_engine, service_engine)
    pending.pending_keys(pair_mapping, [1, 2, 3])    # -> {2}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from migration_plans.core.mapping import TableMapping
from migration_plans.core.outbox import OPEN_STATUSES, OUTBOX_TABLE
from reconciler.diff import Key


class PendingChanges(Protocol):
    """Keys of ``table`` that have a change not yet applied to the other side."""

    def pending_keys(self, table: TableMapping, keys: Sequence[Key]) -> set[Key]: ...


class NoPending:
    """Nothing is ever in flight (no dual-write)."""

    def pending_keys(self, table: TableMapping, keys: Sequence[Key]) -> set[Key]:
        return set()


_outbox = sa.table(
    OUTBOX_TABLE,
    sa.column("aggregate_type"),
    sa.column("aggregate_key"),
    sa.column("status"),
)


class OutboxPending:
    """Reads ``strangler_outbox`` on each database that has one.

    An event counts when its ``aggregate_type`` is the pair's name or either table
    name, its ``aggregate_key`` is the key as text, and its ``status`` is
    ``pending`` or ``in_flight``.
    """

    def __init__(self, *engines: Engine) -> None:
        self.engines = engines

    def pending_keys(self, table: TableMapping, keys: Sequence[Key]) -> set[Key]:
        if not keys:
            return set()
        types = [table.name, table.monolith_table, table.service_table]
        wanted = {str(key): key for key in keys}
        found: set[Key] = set()
        for engine in self.engines:
            try:
                if not sa.inspect(engine).has_table(OUTBOX_TABLE):
                    continue
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
