"""Write helpers every service's ``crud.py`` uses: the row and its change event, together.

with session.begin():
    save(session, product, table=PRODUCTS, operation=Operation.INSERT, changes=changes)

The event's key is the row's service key: an integer key as the integer, any other
(text, UUID, several columns) as the key's text (:meth:`KeyMapping.text_of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from extracted_services.common.changes import ChangeRecorder, row_image
from migration_plans.core.mapping import TableMapping
from migration_plans.core.outbox import Operation


def event_key(table: TableMapping, row: Mapping[str, Any]) -> int | str:
    """The outbox key of a service-form row of ``table``."""
    values = table.service_key(row)
    single = values[0] if len(values) == 1 else None
    if isinstance(single, int) and not isinstance(single, bool):
        return single
    return table.key.text_of(values, "service")


def save(
    session: Session,
    instance: object,
    *,
    table: TableMapping,
    operation: Operation,
    changes: ChangeRecorder,
) -> None:
    """Insert or update ``instance``, then record its row image in the same transaction.

    An update's image is read back from the row after the write, not taken from the
    object: the UPDATE sets only the columns this request changed, while the object
    keeps the other columns as it loaded them. Another transaction may have changed
    those since (committed before this write, or holding the row while this write
    waited); an image from the object would carry their old values to the other side
    and undo that change there. After the write this transaction holds the row lock,
    so what it reads back is the row as it will commit. Without a sink (no event is
    recorded) nothing is read back.
    """
    session.add(instance)
    session.flush()
    if operation is Operation.UPDATE and changes.records:
        session.refresh(instance)
    row = row_image(instance, table.service_columns)
    changes.record(
        session, table=table.name, operation=operation, key=event_key(table, row), row=row
    )


def remove(
    session: Session, instance: object, *, table: TableMapping, changes: ChangeRecorder
) -> None:
    """Delete ``instance``, then record the deletion in the same transaction."""
    key = event_key(table, row_image(instance, table.key.service_columns))
    session.delete(instance)
    session.flush()
    changes.record(session, table=table.name, operation=Operation.DELETE, key=key, row=None)
