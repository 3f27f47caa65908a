"""Set-based statements of the relay on PostgreSQL: one statement per table and kind.

A batch of thousands of events becomes a handful of statements whose values travel as
one JSON document each (``json_populate_recordset``, ``json_to_recordset``): an upsert
per table, a delete per table, one statement that reads and moves the version guards, one mark.
JSON is encoded by the standard library's C encoder, so the Python cost per value stays
small; PostgreSQL converts each value with its column type's input function. Names are
quoted; every value is bound.

Columns holding bytes cannot travel as JSON text: :func:`json_fits` is false for them
and the relay writes those rows with its row-by-row statements.

Monolith row images bound for the service can skip Python altogether
(:func:`mapped_upsert`): the captured payloads (JSON text) are joined into one array and
the pair's transforms run in SQL, when every field has an exact SQL form (identity,
decimal_cents, bool_enum, timestamp). Each SQL form gives the Python transform's value
or raises; an error sends the batch to the relay's commit-order path, which converts
in Python and names the event to blame.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, CursorResult, LargeBinary, Table
from sqlalchemy.dialects import postgresql

from dualwrite.partitions import BUCKET_SQL
from dualwrite.schema import APPLIED_TABLE
from migration_plans.core.mapping import (
    BoolEnumField,
    DecimalCentsField,
    IdentityField,
    TableMapping,
    TimestampField,
)
from migration_plans.core.outbox import OUTBOX_TABLE
from migration_plans.core.sqlnames import quote_ident, quote_literal

_DIALECT = postgresql.dialect()
_UPSERTS: dict[tuple[int, tuple[str, ...], str], str] = {}
_KEYS = "unnest(%(types)s::text[], %(keys)s::text[]) AS k(t, k)"


def _plain(value: Any) -> Any:
    """JSON form of the values the mapping produces (text PostgreSQL reads back exactly)."""
    if isinstance(value, (Decimal, UUID)):
        return str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def _json(value: Any) -> str:
    return json.dumps(value, default=_plain, separators=(",", ":"))


def _text_array(values: Sequence[str]) -> str:
    """A ``text[]`` literal of ``values``, each quoted: built by string joins, several
    times cheaper than the driver's list adapter, which dumps element by element."""
    if not values:
        return "{}"
    quoted = (v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return '{"' + '","'.join(quoted) + '"}'


def _key_arrays(keys: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The parameters of :data:`_KEYS`: keys as two ``text[]`` literals."""
    return {"types": _text_array([k for k, _ in keys]), "keys": _text_array([k for _, k in keys])}


def json_fits(table: Table, columns: Sequence[str]) -> bool:
    """True when every column of ``columns`` can travel as JSON text."""
    return all(not isinstance(table.c[name].type, LargeBinary) for name in columns)


def upsert_rows(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    """``INSERT ... SELECT FROM json_populate_recordset ... ON CONFLICT (keys) DO UPDATE``.

    Every row has the same columns (the mapping's); keys are distinct. ``keys`` are the
    key columns (all of a composite key). Only the rows' columns are set on a conflict,
    so a pair that owns some columns of a shared (split) table leaves the others alone.
    """
    if not rows:
        return
    columns = tuple(rows[0])
    cache_key = (id(table), columns, ",".join(keys))
    statement = _UPSERTS.get(cache_key)
    if statement is None:
        names = ", ".join(quote_ident(name) for name in columns)
        changing = [name for name in columns if name not in keys]
        action = (
            "DO UPDATE SET "
            + ", ".join(f"{quote_ident(n)} = excluded.{quote_ident(n)}" for n in changing)
            if changing
            else "DO NOTHING"
        )
        target = quote_ident(table.name)
        conflict = ", ".join(quote_ident(key) for key in keys)
        statement = (
            f"INSERT INTO {target} ({names}) SELECT {names} "
            f"FROM json_populate_recordset(NULL::{target}, %(rows)s::json) "
            f"ON CONFLICT ({conflict}) {action}"
        )
        _UPSERTS[cache_key] = statement
    conn.exec_driver_sql(statement, {"rows": _json(list(rows))})


def _refuse(value: str, why: str, as_type: str) -> str:
    """SQL of type ``as_type`` that fails for a non-NULL ``value`` (a text no integer input
    accepts, naming ``why``): a value the SQL form cannot map exactly."""
    failing = f"CAST({quote_literal(why + ': ')} || ({value})::text AS bigint)"
    return f"CAST(CAST({failing} AS text) AS {as_type})"


def _mapped_field(field: Any, column: str, service_type: str) -> tuple[str, str] | None:
    """(record column type, SQL value) of one field from image column ``j.column``, or None
    when the field has no exact SQL form."""
    value = f"j.{quote_ident(column)}"
    if isinstance(field, IdentityField):
        if field.empty_string == "null":
            return "text", f"nullif({value}, '')"
        return service_type, value
    if isinstance(field, DecimalCentsField):
        scaled = f"({value} * 1{'0' * field.scale})"
        why = f"{field.monolith}: more than {field.scale} decimal places"
        return (
            "numeric",
            f"CASE WHEN {scaled} = trunc({scaled}) THEN {scaled} "
            f"ELSE {_refuse(value, why, 'numeric')} END",
        )
    if isinstance(field, BoolEnumField):
        # json: only the JSON literals true and false map (a string "false" does not).
        true, false = quote_literal(field.true_value), quote_literal(field.false_value)
        why = f"{field.monolith}: not a boolean"
        return (
            "json",
            f"CASE {value}::text WHEN 'true' THEN {true} WHEN 'false' THEN {false} "
            f"ELSE {_refuse(value, why, 'text')} END",
        )
    if isinstance(field, TimestampField):
        # An ISO 8601 text only (PostgreSQL also reads 'now', 'epoch' and 'infinity'),
        # read in the session's time zone (UTC) when it has no offset, as Python does.
        moment = f"CAST({value} AS timestamptz)"
        if field.precision != "us":
            unit = "second" if field.precision == "s" else "milliseconds"
            moment = f"date_trunc('{unit}', {moment})"
        why = f"{field.monolith}: not an ISO 8601 timestamp"
        return (
            "text",
            f"CASE WHEN left({value}, 1) BETWEEN '0' AND '9' THEN {moment} "
            f"ELSE {_refuse(value, why, 'timestamptz')} END",
        )
    return None


_MAPPED: dict[tuple[str, int], str | None] = {}
_ROWS = "\x00rows\x00"  # quote_literal refuses NUL: no literal of a statement holds it


def mapped_upsert(pair: TableMapping, table: Table) -> str | None:
    """The upsert of monolith row images (a JSON array, ``%(rows)s``) into ``table``, the
    pair's service table, converting in SQL; None when some field has no exact SQL form
    (then the relay converts in Python). Statement cached per pair and table."""
    cache_key = (pair.name, id(table))
    if cache_key not in _MAPPED:
        _MAPPED[cache_key] = _mapped_upsert(pair, table)
    return _MAPPED[cache_key]


def _mapped_upsert(pair: TableMapping, table: Table) -> str | None:
    if pair.key.id_map or not json_fits(table, pair.service_columns):
        return None
    try:
        types = {
            name: table.c[name].type.compile(dialect=_DIALECT) for name in pair.service_columns
        }
    except Exception:  # a column type SQLAlchemy cannot name (reflected as NullType)
        return None
    records: list[str] = []
    values: list[str] = []
    for monolith, service in zip(pair.key.monolith_columns, pair.key.service_columns, strict=True):
        records.append(f"{quote_ident(monolith)} {types[service]}")
        values.append(f"j.{quote_ident(monolith)}")
    for field in pair.fields:
        mapped = _mapped_field(field, field.monolith, types[field.service])
        if mapped is None:
            return None
        records.append(f"{quote_ident(field.monolith)} {mapped[0]}")
        values.append(f"CAST({mapped[1]} AS {types[field.service]})")
    keys = list(pair.key.service_columns)
    names = ", ".join(quote_ident(name) for name in pair.service_columns)
    changing = [name for name in pair.service_columns if name not in keys]
    action = (
        "DO UPDATE SET "
        + ", ".join(f"{quote_ident(n)} = excluded.{quote_ident(n)}" for n in changing)
        if changing
        else "DO NOTHING"
    )
    statement = (
        f"INSERT INTO {quote_ident(table.name)} ({names}) SELECT {', '.join(values)} "
        f"FROM json_to_recordset({_ROWS}) AS j({', '.join(records)}) "
        f"ON CONFLICT ({', '.join(quote_ident(key) for key in keys)}) {action}"
    )
    # Literals (enum values, names) may hold '%': the driver's placeholders must not see it.
    return statement.replace("%", "%%").replace(_ROWS, "%(rows)s::json")


def upsert_images(conn: Connection, statement: str, images: Sequence[str]) -> None:
    """Run a :func:`mapped_upsert` statement over row images (JSON texts of objects)."""
    if images:
        conn.exec_driver_sql(statement, {"rows": "[" + ",".join(images) + "]"})


def update_rows(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> int:
    """``UPDATE ... FROM json_populate_recordset`` the rows' columns of existing rows only.

    Returns how many rows it updated (the caller compares it with ``len(rows)``).
    """
    if not rows:
        return 0
    target = quote_ident(table.name)
    changing = [name for name in rows[0] if name not in keys]
    if not changing:
        return len(existing_keys(conn, table, keys, [tuple(r[k] for k in keys) for r in rows]))
    assignments = ", ".join(f"{quote_ident(n)} = j.{quote_ident(n)}" for n in changing)
    matches = " AND ".join(f"{target}.{quote_ident(k)} = j.{quote_ident(k)}" for k in keys)
    result = conn.exec_driver_sql(
        f"UPDATE {target} SET {assignments} "
        f"FROM json_populate_recordset(NULL::{target}, %(rows)s::json) AS j WHERE {matches}",
        {"rows": _json(list(rows))},
    )
    return int(result.rowcount)


def _key_records(table: Table, keys: Sequence[str]) -> str:
    """``json_to_recordset`` column list of ``keys`` typed as ``table``'s columns."""
    return ", ".join(
        f"{quote_ident(key)} {table.c[key].type.compile(dialect=_DIALECT)}" for key in keys
    )


def delete_keys(
    conn: Connection, table: Table, keys: Sequence[str], values: Sequence[Sequence[Any]]
) -> None:
    """``DELETE ... USING`` the key values (one tuple per row, all key columns): one statement."""
    if not values:
        return
    target = quote_ident(table.name)
    matches = " AND ".join(f"{target}.{quote_ident(k)} = d.{quote_ident(k)}" for k in keys)
    conn.exec_driver_sql(
        f"DELETE FROM {target} USING json_to_recordset(%(keys)s::json) "
        f"AS d({_key_records(table, keys)}) WHERE {matches}",
        {"keys": _json([dict(zip(keys, row, strict=True)) for row in values])},
    )


def existing_keys(
    conn: Connection, table: Table, keys: Sequence[str], values: Sequence[Sequence[Any]]
) -> set[tuple[Any, ...]]:
    """Which of the key ``values`` have a row in ``table`` (as tuples of the key columns)."""
    if not values:
        return set()
    target = quote_ident(table.name)
    selected = ", ".join(f"{target}.{quote_ident(k)}" for k in keys)
    matches = " AND ".join(f"{target}.{quote_ident(k)} = d.{quote_ident(k)}" for k in keys)
    rows = conn.exec_driver_sql(
        f"SELECT {selected} FROM {target} JOIN json_to_recordset(%(keys)s::json) "
        f"AS d({_key_records(table, keys)}) ON {matches}",
        {"keys": _json([dict(zip(keys, row, strict=True)) for row in values])},
    )
    return {tuple(row) for row in rows}


def advance_guards(
    conn: Connection, context: str, last_ids: dict[tuple[str, str], int], now: datetime
) -> dict[tuple[str, str], int]:
    """Read the version guards of ``last_ids``'s keys and move each up to its key's last
    event id (never down), in one statement; returns the guards as they were before.

    What the relay applies of a key is exactly its events above the old guard, so the
    new guard is the larger of the two whatever the outcome of each event; in the
    applying transaction, a rollback takes the move back with the writes.
    """
    ordered = sorted(last_ids.items())  # rows locked in one order by every applier
    # One snapshot for the whole statement: "old" reads the guards before "moved" writes.
    # The old guard is a scalar subquery: one primary-key probe per key, whatever the
    # statistics say (a join, even LATERAL, is flattened, and with statistics from before
    # a bulk change the planner hashes every guard of the context for each batch).
    rows = conn.exec_driver_sql(
        "WITH g AS (SELECT t, k, e FROM unnest(%(types)s::text[], %(keys)s::text[], "
        "%(ids)s::bigint[]) AS g(t, k, e)), "
        f"old AS (SELECT g.t, g.k, (SELECT a.last_event_id FROM {APPLIED_TABLE} a "
        "WHERE a.context = %(ctx)s AND a.aggregate_type = g.t AND a.aggregate_key = g.k) "
        "AS last_event_id FROM g), "
        f"moved AS (INSERT INTO {APPLIED_TABLE} "
        "(context, aggregate_type, aggregate_key, last_event_id, applied_at) "
        "SELECT %(ctx)s, t, k, e, %(now)s FROM g "
        "ON CONFLICT (context, aggregate_type, aggregate_key) DO UPDATE "
        "SET last_event_id = excluded.last_event_id, applied_at = excluded.applied_at "
        f"WHERE {APPLIED_TABLE}.last_event_id < excluded.last_event_id) "
        "SELECT t, k, last_event_id FROM old",
        {
            "ctx": context,
            "now": now,
            **_key_arrays([k for k, _ in ordered]),
            "ids": "{" + ",".join(str(int(i)) for _, i in ordered) + "}",
        },
    )
    return {(row[0], row[1]): int(row[2]) for row in _tuples(rows) if row[2] is not None}


def mark_events(
    conn: Connection, ids: Sequence[int], status: str, now: datetime, unapplied: Sequence[str]
) -> None:
    """Set ``status`` on the still unapplied events of ``ids``: one statement.

    The status test is written so that no index can serve it: the ids pick the rows
    through the primary key (an index on the status is what stale statistics pick,
    scanning every open event of the outbox).
    """
    conn.exec_driver_sql(
        f"UPDATE {OUTBOX_TABLE} SET status = %(status)s, applied_at = %(now)s "
        "WHERE id = ANY(%(ids)s::bigint[]) AND status || '' = ANY(%(unapplied)s::text[])",
        {
            "ids": "{" + ",".join(str(int(i)) for i in ids) + "}",
            "status": status,
            "now": now,
            "unapplied": list(unapplied),
        },
    )


def unapplied_keys(
    conn: Connection, context: str, keys: Sequence[tuple[str, str]], unapplied: Sequence[str]
) -> set[tuple[str, str]]:
    """Which of ``keys`` have unapplied events in ``conn``'s outbox."""
    rows = conn.exec_driver_sql(
        f"SELECT DISTINCT o.aggregate_type, o.aggregate_key FROM {OUTBOX_TABLE} o "
        f"JOIN {_KEYS} ON o.aggregate_type = k.t AND o.aggregate_key = k.k "
        "WHERE o.context = %(ctx)s AND o.status = ANY(%(unapplied)s::text[])",
        {"ctx": context, **_key_arrays(keys), "unapplied": list(unapplied)},
    )
    return {(row[0], row[1]) for row in rows}


def supersede_keys(
    conn: Connection,
    context: str,
    keys: Sequence[tuple[str, str]],
    unapplied: Sequence[str],
    status: str,
    now: datetime,
    reason: str,
) -> None:
    """Mark every unapplied event of ``keys`` in ``conn``'s outbox ``status`` with ``reason``.

    When the outbox has no unapplied event of the context at all (the usual case while
    the other side bulk-changes), a one-time test skips the join with the keys.
    """
    conn.exec_driver_sql(
        f"UPDATE {OUTBOX_TABLE} o SET status = %(status)s, applied_at = %(now)s, "
        f"last_error = %(reason)s FROM {_KEYS} "
        "WHERE o.aggregate_type = k.t AND o.aggregate_key = k.k "
        "AND o.context = %(ctx)s AND o.status = ANY(%(unapplied)s::text[]) "
        f"AND EXISTS (SELECT FROM {OUTBOX_TABLE} w "
        "WHERE w.context = %(ctx)s AND w.status = ANY(%(unapplied)s::text[]))",
        {
            "ctx": context,
            **_key_arrays(keys),
            "unapplied": list(unapplied),
            "status": status,
            "now": now,
            "reason": reason,
        },
    )


def pending_events(
    conn: Connection,
    context: str,
    owned: str,
    blocked: Sequence[tuple[str, str]],
    limit: int,
    columns: Sequence[str],
) -> list[Any]:
    """Pending rows of ``context`` matching ``owned`` (SQL), oldest first, minus ``blocked``,
    as the driver's tuples (thousands a batch: SQLAlchemy's row objects are skipped).

    ``columns`` starts with ``id``.
    """
    names = ", ".join(columns)
    params = {"ctx": context, **_key_arrays(blocked), "limit": limit}
    # The status as a range and the order as (status, id): only the index on (status, id)
    # yields that order, so the read walks the pending events and stops at the limit.
    # With "status = 'pending' ORDER BY id" statistics from before a bulk change make
    # the planner walk the primary key instead, through every applied event below the
    # first pending one.
    pending = (
        f"FROM {OUTBOX_TABLE} WHERE status >= 'pending' AND status <= 'pending' "
        "AND context = %(ctx)s"
    )
    others = f"(aggregate_type, aggregate_key) NOT IN (SELECT t, k FROM {_KEYS})"
    if owned == "TRUE":
        return _tuples(
            conn.exec_driver_sql(
                f"SELECT {names} {pending} AND {others} ORDER BY status, id LIMIT %(limit)s",
                params,
            )
        )
    # A partition's condition (an MD5 of the key) is beyond the planner's estimates
    # (0.5%), so with it in the same query the planner reads the whole outbox in
    # parallel and sorts it, every batch (80 ms at 100,000 pending events, and the other
    # core). Behind OFFSET 0 the walk of the index stays as it is, the condition filters
    # what it yields and the limit stops it. The outer ORDER BY is the subquery's own
    # order, so it costs no sort, and the oldest events are the ones the limit keeps.
    return _tuples(
        conn.exec_driver_sql(
            f"SELECT {names} FROM (SELECT {names} {pending} ORDER BY status, id OFFSET 0) "
            f"AS oldest WHERE {owned} AND {others} ORDER BY status, id LIMIT %(limit)s",
            params,
        )
    )


def _tuples(result: CursorResult[Any]) -> list[Any]:
    """Every row of ``result`` as the driver's tuples, fetched from its cursor directly."""
    try:
        return list(result.cursor.fetchall()) if result.cursor is not None else []
    finally:
        result.close()


def blocked_keys(
    conn: Connection, context: str, owned: str, blocking: Sequence[str], limit: int
) -> list[tuple[str, str]]:
    """Up to ``limit`` keys matching ``owned`` (SQL) with an event in ``blocking`` statuses."""
    rows = conn.exec_driver_sql(
        f"SELECT DISTINCT aggregate_type, aggregate_key FROM {OUTBOX_TABLE} "
        f"WHERE context = %(ctx)s AND status = ANY(%(blocking)s::text[]) AND {owned} "
        "LIMIT %(limit)s",
        {"ctx": context, "blocking": list(blocking), "limit": limit},
    )
    return [(row[0], row[1]) for row in rows]


def pending_partitions(conn: Connection, context: str, count: int, limit: int) -> set[int]:
    """Which of ``count`` partitions own at least one of the oldest ``limit`` pending events
    (their keys only: no payload is read)."""
    rows = conn.exec_driver_sql(
        f"SELECT DISTINCT mod({BUCKET_SQL}, {int(count)}) FROM ("
        f"SELECT aggregate_type, aggregate_key FROM {OUTBOX_TABLE} "
        "WHERE status >= 'pending' AND status <= 'pending' AND context = %(ctx)s "
        "ORDER BY status, id LIMIT %(limit)s) AS oldest",
        {"ctx": context, "limit": limit},
    )
    return {int(row[0]) for row in rows}


ANALYZE_LOCK = "strangler-analyze:"
"""Prefix of the advisory lock a relay holds while it analyzes a database's relay tables."""


def analyze_lock(tables: Sequence[str]) -> str:
    """The name of the advisory lock (``hashtextextended`` of it) held while analyzing ``tables``."""
    return ANALYZE_LOCK + ",".join(tables)


def analyze_unless_busy(conn: Connection, tables: Sequence[str]) -> bool:
    """ANALYZE ``tables`` (trusted names: the relay's own) unless another relay is
    analyzing them now; True when this call analyzed them. ``conn`` is in autocommit.

    The partitions of a relay read one outbox, and a bulk change gives each of them a
    full batch at once: each used to analyze the outbox then, and the second ANALYZE of
    a table waits for the first, so the partitions took turns instead of applying. (Not
    "analyzed lately": the statistics of a change arrive late, and a relay that skipped
    an ANALYZE for an outbox analyzed empty just before a bulk change read its batches
    by sorting every pending event.)
    """
    params = {"lock": analyze_lock(tables)}
    taken = conn.exec_driver_sql(
        "SELECT pg_try_advisory_lock(hashtextextended(%(lock)s, 0))", params
    ).scalar_one()
    if not taken:
        return False
    try:
        conn.exec_driver_sql(f"ANALYZE {', '.join(tables)}")
        return True
    finally:
        conn.exec_driver_sql("SELECT pg_advisory_unlock(hashtextextended(%(lock)s, 0))", params)
