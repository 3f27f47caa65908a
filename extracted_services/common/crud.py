"""Write helpers every service's ``crud.py`` uses: the row and its change event, together.

with session.begin():
    save(session, product, table=PRODUCTS, operation=Operation.INSERT, changes=changes)
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.orm import Session

from extracted_services.common.changes import ChangeRecorder, row_image
from migration_plans.core.mapping import TableMapping
from migration_plans.core.outbox import Operation


class HasId(Protocol):
    id: Any


def save(
    session: Session,
    instance: HasId,
    *,
    table: TableMapping,
    operation: Operation,
    changes: ChangeRecorder,
) -> None:
    """Insert or update ``instance``, then record its row image in the same transaction."""
    session.add(instance)
    session.flush()
    changes.record(
        session,
        table=table.name,
        operation=operation,
        key=int(instance.id),
        row=row_image(instance, table.service_columns),
    )


def remove(
    session: Session, instance: HasId, *, table: TableMapping, changes: ChangeRecorder
) -> None:
    """Delete ``instance``, then record the deletion in the same transaction."""
    key = int(instance.id)
    session.delete(instance)
    session.flush()
    changes.record(session, table=table.name, operation=Operation.DELETE, key=key, row=None)
