"""Change capture on the monolith: triggers that append every change to ``strangler_outbox``.

Django signals miss ``QuerySet.update``, ``bulk_create`` and raw SQL; triggers see them
all, in the writer's own transaction. On PostgreSQL they are statement-level (transition
tables: one call, one set-based outbox insert and one NOTIFY per statement, so a bulk
``UPDATE`` costs little more than the update itself); SQLite has no transition tables and
keeps row triggers. Within a statement each key gets one event (a key an ``UPDATE`` moved
gets a delete of the old key and an upsert of the new one); events of later statements
get higher outbox ids, so per-key order is commit order. The triggers skip:

- changes made by the relay (loop prevention): PostgreSQL reads the transaction
  setting ``strangler.origin`` (``SET LOCAL strangler.origin = 'relay'``); SQLite
  reads the one row of ``strangler_capture_origin``, which the relay sets and clears
  inside its own (single-writer) transaction;
- contexts whose capture is off (``strangler_capture``), so the shared phase costs
  one index probe per row and no outbox growth.

The payload is the monolith row image (JSON); the relay maps it to the service form.
The ``X-Request-ID`` comes from the session setting ``strangler.request_id`` (set by
:class:`dualwrite.django_app.middleware.CaptureRequestIdMiddleware`), else from
``strangler_capture_origin.request_id`` on SQLite, else the transaction id.

    install_capture(engine, [mapping_for("catalog")])
    set_capture(engine, "catalog", enabled=True)
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from typing import NamedTuple

import psycopg
from sqlalchemy import Connection, Engine, select, text, update
from sqlalchemy.exc import OperationalError

from dualwrite.schema import (
    CAPTURE_ORIGIN_TABLE,
    CAPTURE_TABLE,
    MONOLITH_TABLES,
    capture_origin_table,
    capture_table,
)
from migration_plans.core.mapping import ContextMapping, JsonField, TableMapping
from migration_plans.core.outbox import NOTIFY_CHANNEL, OUTBOX_TABLE, outbox_table
from migration_plans.core.sqlnames import MAX_IDENTIFIER, quote_ident, quote_literal

log = logging.getLogger("dualwrite.capture")

RELAY_ORIGIN = "relay"
# PostgreSQL: marks the current transaction's writes as the relay's (the triggers skip them).
PG_RELAY_ORIGIN = f"set_config('strangler.origin', '{RELAY_ORIGIN}', true)"

_OUTBOX_COLUMNS = (
    "event_id, context, aggregate_type, aggregate_key, operation, payload, origin, "
    "request_id, status, attempts, created_at"
)

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger
LANGUAGE plpgsql SET work_mem = '64MB' SET jit = off AS $strangler_capture$
DECLARE
    rid text;
    seq regclass;
    rows_of_pair bigint;
    captured bigint := 0;
BEGIN
    IF coalesce(current_setting('strangler.origin', true), '') = '{relay}' THEN
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM {capture} WHERE context = {context} AND enabled) THEN
        RETURN NULL;
    END IF;
    rid := coalesce(nullif(current_setting('strangler.request_id', true), ''),
                    'pg-tx-' || txid_current()::text);
    -- Event ids follow the outbox ids ('m-<id>'): unique by construction, no index kept.
    seq := pg_get_serial_sequence('{outbox}', 'id')::regclass;
    IF TG_OP = 'INSERT' THEN
{inserts}
    ELSIF TG_OP = 'DELETE' THEN
{deletes}
    ELSE
{updates}
    END IF;
    IF captured > 0 THEN
        PERFORM pg_notify('{channel}', {context});
    END IF;
    RETURN NULL;
END
$strangler_capture$
"""
"""A capture function per table, run once per statement (not per row) with the
statement's transition tables, so a bulk ``UPDATE`` of 100,000 rows costs one trigger
call, one set-based insert into the outbox per pair and one NOTIFY. The context,
aggregate types and key columns are written into the function (quoted), so PL/pgSQL
keeps each statement's plan for the session: a single-row write pays no planning.
JIT is off: the planner, without statistics of the transition tables, costs a bulk
statement's join high enough to compile it, which took longer (0.2 s of a 100,000-row
``UPDATE``) than the compiled code saved."""

_PG_COUNT = """
        GET DIAGNOSTICS rows_of_pair = ROW_COUNT;
        captured := captured + rows_of_pair;"""

_PG_INSERT = """
        INSERT INTO {outbox} (id, {columns})
        SELECT n, 'm-' || n, {context}, {kind}, key, 'insert', image,
               'monolith', rid, 'pending', 0, clock_timestamp()
        FROM (SELECT nextval(seq) AS n, {image_r} AS image, {key_r} AS key
              FROM strangler_new r WHERE {present_r}) AS inserted;"""

_PG_DELETE = """
        INSERT INTO {outbox} (id, {columns})
        SELECT n, 'm-' || n, {context}, {kind}, key, 'delete', NULL,
               'monolith', rid, 'pending', 0, clock_timestamp()
        FROM (SELECT nextval(seq) AS n, {key_o} AS key
              FROM strangler_old o WHERE {present_o}) AS deleted;"""

# Old and new rows pair up by key. A key only in the old rows moved away: a delete;
# one only in the new rows is an upsert of its image; a pair whose old and new columns
# are equal changed nothing and is skipped, its image never built.
_PG_UPDATE = """
        INSERT INTO {outbox} (id, {columns})
        SELECT n, 'm-' || n, {context}, {kind}, changed.key,
               CASE WHEN image IS NULL THEN 'delete' ELSE 'update' END, image,
               'monolith', rid, 'pending', 0, clock_timestamp()
        FROM (
            SELECT nextval(seq) AS n, CASE WHEN {present_r} THEN {image_r} END AS image,
                   CASE WHEN {present_r} THEN {key_r} ELSE {key_o} END AS key
            FROM strangler_old o
            FULL JOIN strangler_new r ON {join}
            WHERE NOT ({present_r}) OR NOT ({present_o}) OR NOT ({unchanged})
        ) AS changed;"""

JSONB_BUILD_PAIRS = 50
"""``jsonb_build_object`` takes at most 100 arguments: 50 columns per call."""


def _pg_image(pair: TableMapping, alias: str, whole_row: bool) -> str:
    """The row image of ``pair`` from transition-table row ``alias`` (JSON text).

    A table captured for one pair sends the whole row (``row_to_json``: text as it is
    built, cheaper than ``to_jsonb``, which sorts and converts); a table split between
    pairs sends each pair its own columns only.
    """
    if whole_row:
        return f"row_to_json({alias})::text"
    entries = [
        f"{quote_literal(column)}, {alias}.{quote_ident(column)}"
        for column in pair.monolith_columns
    ]
    calls = [
        f"jsonb_build_object({', '.join(entries[start : start + JSONB_BUILD_PAIRS])})"
        for start in range(0, len(entries), JSONB_BUILD_PAIRS)
    ]
    return f"({' || '.join(calls)})::text"


def _pg_unchanged(pair: TableMapping, whole_row: bool) -> str:
    """SQL: the old row ``o`` and the new row ``r`` are the same for ``pair``.

    A whole row is compared by its stored bytes (``*=``, NULLs equal: no output
    function called, no JSON built, and any column type, where ``=`` needs an equality
    operator that json columns lack); a pair of a split table by its image.
    """
    if whole_row:
        return "o *= r"
    return f"{_pg_image(pair, 'o', whole_row)} = {_pg_image(pair, 'r', whole_row)}"


def _present(pair: TableMapping, alias: str) -> str:
    """SQL: row ``alias`` exists and has every key column (outer joins leave them NULL)."""
    return " AND ".join(
        f"{alias}.{quote_ident(column)} IS NOT NULL" for column in pair.key.monolith_columns
    )


def _pg_pair_blocks(context: str, pair: TableMapping, whole_row: bool) -> dict[str, str]:
    values = {
        "outbox": OUTBOX_TABLE,
        "columns": _OUTBOX_COLUMNS,
        "context": quote_literal(context),
        "kind": quote_literal(pair.name),
        "image_r": _pg_image(pair, "r", whole_row),
        "unchanged": _pg_unchanged(pair, whole_row),
        "key_r": pair.key.text_sql("r", "postgresql"),
        "key_o": pair.key.text_sql("o", "postgresql"),
        "present_r": _present(pair, "r"),
        "present_o": _present(pair, "o"),
        "join": " AND ".join(
            f"o.{quote_ident(column)} = r.{quote_ident(column)}"
            for column in pair.key.monolith_columns
        ),
    }
    return {
        name: template.format(**values) + _PG_COUNT
        for name, template in (
            ("inserts", _PG_INSERT),
            ("deletes", _PG_DELETE),
            ("updates", _PG_UPDATE),
        )
    }


def _pg_function(context: str, table: str, pairs: list[TableMapping]) -> str:
    whole_row = len(pairs) == 1
    blocks = [_pg_pair_blocks(context, pair, whole_row) for pair in pairs]
    body = _PG_FUNCTION.format(
        function=quote_ident(_trigger_name(table, "fn")),
        relay=RELAY_ORIGIN,
        capture=CAPTURE_TABLE,
        outbox=OUTBOX_TABLE,
        channel=NOTIFY_CHANNEL,
        context=quote_literal(context),
        **{
            branch: "".join(block[branch] for block in blocks)
            for branch in ("inserts", "deletes", "updates")
        },
    )
    if body.count("$strangler_capture$") != 2 or "%" in body:
        raise ValueError(
            f"capture function of {table!r}: a name or the context holds "
            "'$strangler_capture$' or '%', which the trigger DDL cannot carry"
        )
    return body


class _PgTrigger(NamedTuple):
    """One of a table's statement triggers (a trigger with transition tables fires for
    one event only: three of them)."""

    event: str
    tgtype: int
    """``pg_trigger.tgtype`` of it: AFTER, FOR EACH STATEMENT, the event's bit."""
    old_table: str | None
    new_table: str | None

    def referencing(self) -> str:
        tables = [("OLD", self.old_table), ("NEW", self.new_table)]
        return " ".join(f"{kind} TABLE AS {name}" for kind, name in tables if name)


_PG_TRIGGERS = {
    "ins": _PgTrigger("INSERT", 4, None, "strangler_new"),
    "upd": _PgTrigger("UPDATE", 16, "strangler_old", "strangler_new"),
    "del": _PgTrigger("DELETE", 8, "strangler_old", None),
}
PG_TRIGGER_SUFFIXES = tuple(_PG_TRIGGERS)
LEGACY_PG_TRIGGER_SUFFIXES = ("iud", "u")
"""Row-level triggers of earlier versions, dropped when the statement-level ones go in
(with their shared function ``strangler_capture()``, which later versions leave alone:
another database object may not be dropped while a trigger still uses it)."""


def _trigger_name(table: str, suffix: str) -> str:
    """``strangler_capture_<table>_<suffix>``, shortened with a hash to fit 63 characters."""
    name = f"strangler_capture_{table}_{suffix}"
    if len(name) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha1(table.encode()).hexdigest()[:8]
    room = MAX_IDENTIFIER - len(f"strangler_capture__{digest}_{suffix}")
    return f"strangler_capture_{table[:room]}_{digest}_{suffix}"


def _pg_drop_statements(table: str) -> list[str]:
    target = quote_ident(table)
    return [
        f"DROP TRIGGER IF EXISTS {quote_ident(_trigger_name(table, suffix))} ON {target}"
        for suffix in (*LEGACY_PG_TRIGGER_SUFFIXES, *PG_TRIGGER_SUFFIXES)
    ]


def _pg_statements(context: str, table: str, pairs: list[TableMapping]) -> list[str]:
    target = quote_ident(table)
    function = quote_ident(_trigger_name(table, "fn"))
    creates = [
        f"CREATE TRIGGER {quote_ident(_trigger_name(table, suffix))} AFTER {trigger.event} "
        f"ON {target} REFERENCING {trigger.referencing()} FOR EACH STATEMENT "
        f"EXECUTE FUNCTION {function}()"
        for suffix, trigger in _PG_TRIGGERS.items()
    ]
    return [_pg_function(context, table, pairs), *_pg_drop_statements(table), *creates]


def _sqlite_image(pair: TableMapping, ref: str) -> str:
    """``json_object`` of the pair's columns; a JSON column's text embedded as JSON (a
    document, not a string holding one), text that is not JSON as the string it is."""
    documents = {
        field.monolith
        for field in pair.fields
        if isinstance(field, JsonField) and field.monolith_storage == "json"
    }
    entries = []
    for column in pair.monolith_columns:
        value = f"{ref}.{quote_ident(column)}"
        if column in documents:
            value = f"CASE WHEN json_valid({value}) THEN json({value}) ELSE {value} END"
        entries.append(f"{quote_literal(column, 'sqlite')}, {value}")
    return f"json_object({', '.join(entries)})"


def _sqlite_insert(
    context: str, pair: TableMapping, operation: str, ref: str, condition: str | None = None
) -> str:
    """``INSERT INTO strangler_outbox ... SELECT`` the event of ``ref`` (``NEW``/``OLD``)."""
    payload = "NULL" if operation == "delete" else _sqlite_image(pair, ref)
    request_id = (
        f"coalesce((SELECT request_id FROM {CAPTURE_ORIGIN_TABLE} WHERE id = 1), "
        "'sqlite-' || lower(hex(randomblob(8))))"
    )
    where = f" WHERE {condition}" if condition else ""
    return (
        f"INSERT INTO {OUTBOX_TABLE} ({_OUTBOX_COLUMNS}) SELECT "
        f"lower(hex(randomblob(16))), {quote_literal(context, 'sqlite')}, "
        f"{quote_literal(pair.name, 'sqlite')}, {pair.key.text_sql(ref, 'sqlite')}, "
        f"'{operation}', {payload}, 'monolith', {request_id}, 'pending', 0, "
        f"strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'{where}"
    )


def _changed(columns: Iterable[str]) -> str:
    return " OR ".join(f"OLD.{quote_ident(c)} IS NOT NEW.{quote_ident(c)}" for c in columns)


def _sqlite_bodies(context: str, pair: TableMapping, whole_row: bool) -> dict[str, list[str]]:
    """The statements of ``pair`` in each trigger (insert, update, delete) of its table."""
    key_moved = _changed(pair.key.monolith_columns)
    # A table split between pairs: an update sends a pair an event only when one of its
    # columns changed (its key moved or one of its fields).
    update_when = None if whole_row else _changed(pair.monolith_columns)
    return {
        "insert": [_sqlite_insert(context, pair, "insert", "NEW")],
        "update": [
            _sqlite_insert(context, pair, "delete", "OLD", key_moved),
            _sqlite_insert(context, pair, "update", "NEW", update_when),
        ],
        "delete": [_sqlite_insert(context, pair, "delete", "OLD")],
    }


def _sqlite_statements(context: str, table: str, pairs: list[TableMapping]) -> list[str]:
    when = (
        f"WHEN coalesce((SELECT origin FROM {CAPTURE_ORIGIN_TABLE} WHERE id = 1), '') "
        f"<> '{RELAY_ORIGIN}' AND EXISTS (SELECT 1 FROM {CAPTURE_TABLE} "
        f"WHERE context = {quote_literal(context, 'sqlite')} AND enabled)"
    )
    bodies = [_sqlite_bodies(context, pair, len(pairs) == 1) for pair in pairs]
    statements: list[str] = []
    for operation in ("insert", "update", "delete"):
        name = quote_ident(_trigger_name(table, operation))
        body = "".join(f"{statement};\n" for each in bodies for statement in each[operation])
        statements.append(f"DROP TRIGGER IF EXISTS {name}")
        statements.append(
            f"CREATE TRIGGER {name} AFTER {operation.upper()} ON {quote_ident(table)} {when}\n"
            f"BEGIN\n{body}END"
        )
    return statements


def captured_tables(mapping: ContextMapping) -> dict[str, list[TableMapping]]:
    """The context's monolith tables, each with its pairs (two for a split table)."""
    tables: dict[str, list[TableMapping]] = {}
    for pair in mapping.tables:
        tables.setdefault(pair.monolith_table, []).append(pair)
    return tables


def capture_statements(dialect: str, mappings: Iterable[ContextMapping]) -> list[str]:
    """DDL (idempotent) that installs the capture triggers of every mapped monolith table."""
    statements: list[str] = []
    build = _pg_statements if dialect == "postgresql" else _sqlite_statements
    if dialect not in ("postgresql", "sqlite"):
        raise ValueError(f"change capture supports PostgreSQL and SQLite, not {dialect!r}")
    for mapping in mappings:
        for table, pairs in captured_tables(mapping).items():
            statements.extend(build(mapping.context, table, pairs))
    return statements


def capture_function_statements(mappings: Iterable[ContextMapping]) -> list[str]:
    """PostgreSQL: ``CREATE OR REPLACE`` of the capture functions only (a new body for
    triggers already installed: no trigger is dropped, no table lock taken)."""
    return [
        _pg_function(mapping.context, table, pairs)
        for mapping in mappings
        for table, pairs in captured_tables(mapping).items()
    ]


def uninstall_statements(dialect: str, mappings: Iterable[ContextMapping]) -> list[str]:
    """DDL that removes the capture triggers again (reverse of :func:`capture_statements`)."""
    statements: list[str] = []
    for mapping in mappings:
        for table in captured_tables(mapping):
            if dialect == "postgresql":
                statements.extend(_pg_drop_statements(table))
                function = quote_ident(_trigger_name(table, "fn"))
                statements.append(f"DROP FUNCTION IF EXISTS {function}()")
            else:
                for suffix in ("insert", "update", "delete"):
                    name = quote_ident(_trigger_name(table, suffix))
                    statements.append(f"DROP TRIGGER IF EXISTS {name}")
    return statements


def run_statements(execute: Callable[[str], object], statements: Iterable[str]) -> None:
    """Run DDL through any ``execute(sql)`` (a Django cursor or a SQLAlchemy connection)."""
    for statement in statements:
        execute(statement)


DDL_ATTEMPTS = 20
"""Tries per table before a lock conflict is raised (with the backoff, about 30 s)."""
DDL_LOCK_TIMEOUT = "100ms"
"""How long (re)installing a trigger may wait for its table's lock on a live monolith:
a waiting lock queues every later write of that table behind it (every read too, for
DROP TRIGGER's ACCESS EXCLUSIVE), so this is the longest the application stalls per try
(``bench/capture_install.py``: 1 s stalled writes a whole second, three times while a
transaction held the table for 3 s). Well under ``deadlock_timeout`` (1 s), so the DDL
gives up before PostgreSQL could choose an application transaction as a deadlock's
victim."""


def install_capture(engine: Engine, mappings: Iterable[ContextMapping]) -> None:
    """Create the monolith-side tables if missing and (re)install the triggers. Idempotent.

    Normally the Django migrations of ``dualwrite.django_app`` do this; the CLI's
    ``install-capture`` and a transition into dual_write use it on a live monolith,
    where the trigger DDL meets the application's transactions. On PostgreSQL:

    - each table gets its own transaction, which waits for that table's lock holding
      no other table's: it cannot close a deadlock cycle with an application
      transaction (which PostgreSQL could settle by aborting the application's);
    - a table whose triggers are installed as this version wants them gets only the
      new function body (``CREATE OR REPLACE``, no table lock at all);
    - a lock not granted within ``DDL_LOCK_TIMEOUT`` is given up and retried with
      backoff, up to ``DDL_ATTEMPTS`` times, then raised.
    """
    wanted = list(mappings)
    _retrying_lock_conflicts(partial(_install_tables, engine), "the capture tables")
    if engine.dialect.name != "postgresql":
        statements = capture_statements(engine.dialect.name, wanted)
        _retrying_lock_conflicts(partial(_run_in_transaction, engine, statements), "capture")
        return
    for mapping in wanted:
        for table, pairs in captured_tables(mapping).items():
            install = partial(_install_pg_table, engine, mapping.context, table, pairs)
            _retrying_lock_conflicts(install, f"capture on {table}")


def _retrying_lock_conflicts(step: Callable[[], None], what: str) -> None:
    for attempt in range(1, DDL_ATTEMPTS + 1):
        try:
            step()
            return
        except OperationalError as exc:
            if not _lock_conflict(exc) or attempt == DDL_ATTEMPTS:
                raise
            delay = min(2.0, 0.05 * 2**attempt) * (0.5 + random.random())
            log.warning(
                "installing %s met the application's locks (attempt %d of %d, retry in %.2fs): %s",
                what,
                attempt,
                DDL_ATTEMPTS,
                delay,
                str(exc.orig).splitlines()[0],
            )
            time.sleep(delay)


def _lock_conflict(exc: OperationalError) -> bool:
    return isinstance(exc.orig, (psycopg.errors.DeadlockDetected, psycopg.errors.LockNotAvailable))


@contextmanager
def _ddl_transaction(engine: Engine) -> Iterator[Connection]:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
        yield conn


def _install_tables(engine: Engine) -> None:
    with _ddl_transaction(engine) as conn:
        for table in (outbox_table, *MONOLITH_TABLES):
            table.create(conn, checkfirst=True)
        if conn.execute(select(capture_origin_table.c.id)).first() is None:
            conn.execute(capture_origin_table.insert().values(id=1, origin=None))


def _run_in_transaction(engine: Engine, statements: list[str]) -> None:
    with _ddl_transaction(engine) as conn:
        run_statements(conn.exec_driver_sql, statements)


def _install_pg_table(engine: Engine, context: str, table: str, pairs: list[TableMapping]) -> None:
    with _ddl_transaction(engine) as conn:
        if _pg_triggers_current(conn, table):
            statements = [_pg_function(context, table, pairs)]
        else:
            statements = _pg_statements(context, table, pairs)
        run_statements(conn.exec_driver_sql, statements)


def _pg_triggers_current(conn: Connection, table: str) -> bool:
    """Whether ``table`` has exactly this version's capture triggers, enabled, on its
    function, with no column list or WHEN condition, and none of an earlier version."""
    names = {
        _trigger_name(table, suffix): suffix
        for suffix in (*LEGACY_PG_TRIGGER_SUFFIXES, *PG_TRIGGER_SUFFIXES)
    }
    rows = conn.execute(
        text(
            "SELECT tgname, tgtype, tgoldtable, tgnewtable, "
            "tgfoid = coalesce(to_regproc(:function)::oid, 0) AND tgenabled = 'O' "
            "AND tgqual IS NULL AND tgattr::text = '' "
            "FROM pg_trigger WHERE tgrelid = to_regclass(:table) AND NOT tgisinternal "
            "AND tgname = ANY(:names)"
        ),
        {
            "function": quote_ident(_trigger_name(table, "fn")),
            "table": quote_ident(table),
            "names": list(names),
        },
    ).all()
    found = {names[name]: (kind, old, new, plain) for name, kind, old, new, plain in rows}
    wanted = {
        suffix: (trigger.tgtype, trigger.old_table, trigger.new_table, True)
        for suffix, trigger in _PG_TRIGGERS.items()
    }
    return found == wanted


def set_capture(engine: Engine, context: str, *, enabled: bool) -> None:
    """Switch capture of ``context`` on or off (takes effect for the next transaction)."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        changed = conn.execute(
            update(capture_table)
            .where(capture_table.c.context == context)
            .values(enabled=enabled, updated_at=now)
        ).rowcount
        if not changed:
            conn.execute(
                capture_table.insert().values(context=context, enabled=enabled, updated_at=now)
            )


def capture_enabled(conn: Connection, context: str) -> bool:
    row = conn.execute(
        select(capture_table.c.enabled).where(capture_table.c.context == context)
    ).first()
    return bool(row and row[0])


@contextmanager
def relay_origin(conn: Connection, request_id: str | None = None) -> Iterator[None]:
    """Mark the writes of ``conn``'s current transaction as the relay's (never captured).

    Use inside the transaction, around the writes; on SQLite the marker row is cleared
    again before the transaction commits, so no other writer ever sees it.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT {PG_RELAY_ORIGIN}")
        yield
        return
    marker = update(capture_origin_table).where(capture_origin_table.c.id == 1)
    conn.execute(marker.values(origin=RELAY_ORIGIN, request_id=request_id))
    yield
    conn.execute(marker.values(origin=None, request_id=None))
