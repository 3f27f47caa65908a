"""Writes as the service makes them, for tests that need the service side to change too."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from dualwrite.outbox import OutboxSink


def service_write(
    pair: Any,
    statement: str,
    params: dict[str, Any],
    *,
    table: str,
    key: int,
    operation: str,
    request_id: str = "req-svc",
) -> None:
    """A service-style write: the row and its outbox event in ONE transaction."""
    with Session(pair.relays[0].engines["service"]) as session, session.begin():
        session.execute(text(statement), params)
        row = None
        if operation != "delete":
            found = (
                session.execute(text(f"SELECT * FROM {table} WHERE id = :id"), {"id": key})
                .mappings()
                .one()
            )
            row = dict(found)
        OutboxSink(context="catalog", origin="service").record(
            session, table=table, operation=operation, key=key, row=row, request_id=request_id
        )
