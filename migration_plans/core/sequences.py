"""Id sequences kept ahead: rows created on either side never get the same id.

The backfill moves each service id sequence past the monolith's largest id plus a
headroom; anything else that writes explicit ids (a reconciler repair) moves the
target's sequence with the same function, which never moves a sequence backwards, so
the headroom the backfill left stays.

- PostgreSQL: the key column's serial/identity sequence (``setval``).
- SQLite: ``sqlite_sequence`` of an ``AUTOINCREMENT`` table (Django's tables). A plain
  ``INTEGER PRIMARY KEY`` has no sequence (its next id is always ``max(id) + 1``), so
  nothing can be kept ahead there: :func:`advance_sequence` returns None.

    top = max_id(monolith_conn, "catalog_product", "id")
    advance_sequence(service_conn, "products", "id", past=top)   # >= top + ID_HEADROOM
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Connection

__all__ = ["ID_HEADROOM", "advance_sequence", "max_id", "sequence_value"]

ID_HEADROOM = 1_000_000
"""Ids kept free between the other side's largest id and this side's next one."""


def max_id(conn: Connection, table: str, column: str) -> int | None:
    """The largest ``column`` of ``table`` (0 when empty); None for a key that is not an integer."""
    source = sa.table(table, sa.column(column))
    top = conn.execute(sa.select(sa.func.max(source.c[column]))).scalar()
    if top is None:
        return 0
    return top if isinstance(top, int) else None


def advance_sequence(
    conn: Connection, table: str, column: str, *, past: int, headroom: int = ID_HEADROOM
) -> int | None:
    """Move the id sequence of ``table.column`` to at least ``past + headroom`` and past the
    table's own ids; never backwards. Returns its value, None when the key has no sequence.
    """
    wanted = max(past + headroom, max_id(conn, table, column) or 0)
    if conn.dialect.name == "postgresql":
        return _advance_pg(conn, table, column, wanted)
    if conn.dialect.name == "sqlite":
        return _advance_sqlite(conn, table, wanted)
    return None


def sequence_value(conn: Connection, table: str, column: str) -> int | None:
    """The last id the sequence of ``table.column`` handed out (None: no sequence)."""
    if conn.dialect.name == "postgresql":
        sequence = _pg_sequence(conn, table, column)
        if sequence is None:
            return None
        value = conn.execute(
            sa.text("SELECT coalesce(pg_sequence_last_value(CAST(:s AS regclass)), 0)"),
            {"s": sequence},
        ).scalar_one()
        return int(value)
    if not _sqlite_autoincrement(conn, table):
        return None
    value = conn.execute(
        sa.text("SELECT seq FROM sqlite_sequence WHERE name = :t"), {"t": table}
    ).scalar()
    return int(value or 0)


def _pg_sequence(conn: Connection, table: str, column: str) -> str | None:
    quoted = conn.dialect.identifier_preparer.quote(table)
    sequence = conn.execute(
        sa.text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": quoted, "c": column}
    ).scalar()
    return None if sequence is None else str(sequence)


def _advance_pg(conn: Connection, table: str, column: str, wanted: int) -> int | None:
    sequence = _pg_sequence(conn, table, column)
    if sequence is None:
        return None
    value = conn.execute(
        sa.text(
            "SELECT setval(CAST(:s AS regclass), GREATEST(CAST(:v AS bigint), "
            "coalesce(pg_sequence_last_value(CAST(:s AS regclass)), 0)))"
        ),
        {"s": sequence, "v": wanted},
    ).scalar_one()
    return int(value)


def _sqlite_autoincrement(conn: Connection, table: str) -> bool:
    ddl = conn.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"), {"t": table}
    ).scalar()
    return ddl is not None and "AUTOINCREMENT" in str(ddl).upper()


def _advance_sqlite(conn: Connection, table: str, wanted: int) -> int | None:
    if not _sqlite_autoincrement(conn, table):
        return None
    current = conn.execute(
        sa.text("SELECT seq FROM sqlite_sequence WHERE name = :t"), {"t": table}
    ).scalar()
    if current is None:
        conn.execute(
            sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :v)"),
            {"t": table, "v": wanted},
        )
        return wanted
    if int(current) < wanted:
        conn.execute(
            sa.text("UPDATE sqlite_sequence SET seq = :v WHERE name = :t"),
            {"t": table, "v": wanted},
        )
    return max(int(current), wanted)
