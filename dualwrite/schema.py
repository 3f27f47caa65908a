"""The relay's own tables, next to ``strangler_outbox`` on each side.

Both sides (monolith: Django migrations of ``dualwrite.django_app``; service: an
Alembic revision after the service's ``0001``):

- ``strangler_applied_event``: per aggregate key, the id of the last event from the
  OTHER side applied here. Written in the same transaction as the row, so a
  redelivered or older event changes nothing (the version guard).
- ``strangler_dead_letter``: events that failed ``max_attempts`` times, with their error.

Service side only: ``strangler_backfill`` (per table checkpoint, committed with each chunk;
``strangler_backfill_key`` holds the position as key text when the key is not one
integer column)
and ``strangler_id_map`` (:mod:`migration_plans.core.idmap`: the service key of each
monolith row of pairs whose service makes its own ids).
Monolith side only: ``strangler_capture`` (capture on/off per context, read by the
triggers) and ``strangler_capture_origin`` (SQLite's stand-in for PostgreSQL's
``strangler.origin`` session setting: one row the relay sets inside its transaction).
"""

from __future__ import annotations

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
)

from migration_plans.core.idmap import id_map_table
from migration_plans.core.outbox import KEY_TEXT_LENGTH, outbox_table

APPLIED_TABLE = "strangler_applied_event"
GUARD_FILLFACTOR = 50
"""Fill of the version guards' pages on PostgreSQL (the migrations set the same)."""
DEAD_LETTER_TABLE = "strangler_dead_letter"
BACKFILL_TABLE = "strangler_backfill"
BACKFILL_KEY_TABLE = "strangler_backfill_key"
CAPTURE_TABLE = "strangler_capture"
CAPTURE_ORIGIN_TABLE = "strangler_capture_origin"

relay_metadata = MetaData()

applied_table = Table(
    APPLIED_TABLE,
    relay_metadata,
    Column("context", String(64), primary_key=True),
    Column("aggregate_type", String(64), primary_key=True),
    Column("aggregate_key", String(KEY_TEXT_LENGTH), primary_key=True),
    Column("last_event_id", BigInteger, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)
# Half of each page free: moving a guard up is a HOT update (no new index entry).
event.listen(
    applied_table,
    "after_create",
    DDL(f"ALTER TABLE {APPLIED_TABLE} SET (fillfactor = {GUARD_FILLFACTOR})").execute_if(
        dialect="postgresql"
    ),
)

dead_letter_table = Table(
    DEAD_LETTER_TABLE,
    relay_metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("outbox_id", BigInteger, nullable=False, unique=True),
    Column("event_id", String(36), nullable=False),
    Column("context", String(64), nullable=False),
    Column("aggregate_type", String(64), nullable=False),
    Column("aggregate_key", String(KEY_TEXT_LENGTH), nullable=False),
    Column("operation", String(8), nullable=False),
    Column("payload", Text, nullable=True),
    Column("origin", String(16), nullable=False),
    Column("request_id", String(128), nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("dead_at", DateTime(timezone=True), nullable=False),
)

backfill_table = Table(
    BACKFILL_TABLE,
    relay_metadata,
    Column("context", String(64), primary_key=True),
    Column("table_name", String(64), primary_key=True),
    Column("last_key", BigInteger, nullable=True),
    Column("rows_copied", BigInteger, nullable=False),
    Column("total_rows", BigInteger, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)

backfill_key_table = Table(
    BACKFILL_KEY_TABLE,
    relay_metadata,
    Column("context", String(64), primary_key=True),
    Column("table_name", String(64), primary_key=True),
    Column("last_key", Text, nullable=False),
)
"""The backfill's position in a table whose key is not one integer column (key text)."""

capture_table = Table(
    CAPTURE_TABLE,
    relay_metadata,
    Column("context", String(64), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

capture_origin_table = Table(
    CAPTURE_ORIGIN_TABLE,
    relay_metadata,
    Column("id", Integer, primary_key=True),
    Column("origin", String(16), nullable=True),
    Column("request_id", String(128), nullable=True),
)

SERVICE_TABLES = (
    outbox_table,
    applied_table,
    dead_letter_table,
    backfill_table,
    backfill_key_table,
    id_map_table,
)
MONOLITH_TABLES = (applied_table, dead_letter_table, capture_table, capture_origin_table)


def create_service_relay_tables() -> None:
    """Body of a service's Alembic revision that adds the relay tables (runs inside Alembic)."""
    from alembic import op

    for table in (
        applied_table,
        dead_letter_table,
        backfill_table,
        backfill_key_table,
        id_map_table,
    ):
        op.create_table(
            table.name,
            *(column._copy() for column in table.columns),
            *(
                UniqueConstraint(*constraint.columns.keys(), name=constraint.name)
                for constraint in _named_constraints(table)
            ),
        )


def drop_service_relay_tables() -> None:
    """Reverse of :func:`create_service_relay_tables`."""
    from alembic import op

    for table in (
        id_map_table,
        backfill_key_table,
        backfill_table,
        dead_letter_table,
        applied_table,
    ):
        op.drop_table(table.name)


def _named_constraints(table: Table) -> list[UniqueConstraint]:
    """The table's named unique constraints (columns carry their own primary key)."""
    return [
        constraint
        for constraint in table.constraints
        if isinstance(constraint, UniqueConstraint) and constraint.name
    ]


def service_side_metadata() -> MetaData:
    """The relay's service-side tables (outbox included), for a service's Alembic env."""
    metadata = MetaData()
    for table in SERVICE_TABLES:
        table.to_metadata(metadata)
    return metadata
