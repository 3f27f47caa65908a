"""The embedded default: capture triggers, relay and backfill on SQLite files."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from dualwrite.backfill import Backfill
from dualwrite.capture import set_capture
from dualwrite.config import Direction
from dualwrite.outbox import OutboxSink


def drain(pair: Any) -> None:
    relay = pair.relays[0]
    while any([relay.apply_pending(direction) for direction in Direction]):
        pass


def test_sqlite_triggers_capture_orm_bulk_and_raw_writes(
    sqlite_pair: Any, django_ops: Callable[..., dict[str, Any]]
) -> None:
    django_ops(
        sqlite_pair.monolith_url,
        "seed",
        "save_update",
        "bulk_create",
        "bulk_update",
        "raw_sql",
        "delete",
        "atomic_mix",
    )
    assert sqlite_pair.outbox_counts("monolith") == {"pending": 61}
    drain(sqlite_pair)
    sqlite_pair.assert_in_sync(timeout=5)
    assert sqlite_pair.outbox_counts("service") == {}


def test_sqlite_relay_writes_are_not_captured_again(sqlite_pair: Any) -> None:
    sqlite_pair.monolith(
        "INSERT INTO catalog_category (id, name, slug, description) "
        "VALUES (1, 'Tools', 'tools', '')"
    )
    drain(sqlite_pair)
    with Session(sqlite_pair.relays[0].engines["service"]) as session, session.begin():
        session.execute(text("UPDATE categories SET description = 'from service' WHERE id = 1"))
        row = dict(session.execute(text("SELECT * FROM categories")).mappings().one())
        OutboxSink(context="catalog").record(
            session, table="categories", operation="update", key=1, row=row, request_id="req-sqlite"
        )
    drain(sqlite_pair)
    sqlite_pair.assert_in_sync(timeout=5)
    assert sqlite_pair.outbox_counts("monolith") == {"applied": 1}
    origin = sqlite_pair.monolith("SELECT origin FROM strangler_capture_origin").scalar_one()
    assert origin is None


def test_sqlite_backfill_copies_through_the_mapping(
    sqlite_pair: Any, django_ops: Callable[..., dict[str, Any]]
) -> None:
    set_capture(sqlite_pair.relays[0].engines["monolith"], "catalog", enabled=False)
    django_ops(sqlite_pair.monolith_url, "seed", "bulk_create", "bulk_update")
    result = Backfill(sqlite_pair.settings(), chunk_size=7).run(progress=False)
    assert result.finished and result.total == 4 + 20
    assert sqlite_pair.rows("service") == sqlite_pair.rows("monolith")
