"""The explicit hook of every write path: report each changed row to a ChangeSink.

Service code never writes a mapped table without calling :meth:`ChangeRecorder.record`
in the same transaction. Which sink that is depends on the phase (:func:`sink_for`);
the dual-write relay applies monolith changes with :data:`NO_CHANGES` so they are
never captured again.

    changes = ChangeRecorder("catalog", sink_for(settings), request_id="abc")
    with session.begin():
        product = crud.create_product(session, values, changes=changes)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from dualwrite.outbox import ChangeSink, OutboxSink
from extracted_services.common.metrics import OUTBOX_EVENTS
from extracted_services.common.settings import ServiceSettings
from migration_plans.core.outbox import Operation, Origin
from migration_plans.core.phase import Phase, Side


def sink_for(settings: ServiceSettings, phase: Phase | None = None) -> ChangeSink | None:
    """The outbox while ``phase`` (default ``settings.phase``) syncs the service's writes to
    the monolith, else none.

    That is dual_write, and split with reverse sync (:meth:`Phase.synced_sides`).
    """
    served = settings.phase if phase is None else phase
    if Side.MONOLITH in served.synced_sides(settings.reverse_sync):
        return OutboxSink(context=settings.context, origin=Origin.SERVICE)
    return None


def row_image(instance: object, columns: Iterable[str]) -> dict[str, Any]:
    """The service-form image of an ORM row: the mapped columns only."""
    return {column: getattr(instance, column) for column in columns}


@dataclass(frozen=True)
class ChangeRecorder:
    """A :class:`ChangeSink` (or none) plus the request it serves."""

    context: str
    sink: ChangeSink | None = None
    request_id: str | None = None

    @property
    def records(self) -> bool:
        """Whether changes go anywhere (a sink is set)."""
        return self.sink is not None

    def record(
        self,
        session: Session,
        *,
        table: str,
        operation: Operation,
        key: int | str,
        row: Mapping[str, Any] | None,
    ) -> None:
        """Report one changed row (``row`` is ``None`` for a delete)."""
        if self.sink is None:
            return
        self.sink.record(
            session,
            table=table,
            operation=operation,
            key=key,
            row=row,
            request_id=self.request_id,
        )
        OUTBOX_EVENTS.labels(self.context, table, operation.value).inc()


NO_CHANGES = ChangeRecorder(context="", sink=None)
"""For writers whose changes must not be captured (the relay applying the other side's)."""
