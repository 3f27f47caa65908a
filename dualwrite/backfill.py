"""Backfill: copy a context's existing monolith rows into the service database.

    strangler dualwrite backfill catalog [--chunk-size 20000] [--throttle 0]

1. Capture is switched on first and a checkpoint row per table is written: from then
   on every monolith change is in the outbox, and the relay holds monolith -> service
   events back until the copy has finished (then applies them in order, so rows the
   copy read before a change end up with the change).
2. Tables are copied in mapping order, by key (every column of a composite key: a
   row-value comparison), in chunks. Each chunk and its checkpoint commit in ONE
   service transaction, so a killed backfill resumes exactly where it stopped (an
   integer key's position in ``strangler_backfill.last_key``, any other key's text in
   ``strangler_backfill_key``). Rows already in the service (written by the service itself) are
   left alone (``ON CONFLICT DO NOTHING``): their changes reach the monolith through
   the service's outbox.
3. PostgreSQL to PostgreSQL streams each chunk with COPY, the mapping compiled to SQL;
   other combinations, and pairs whose transforms have no SQL here or whose service
   makes its own keys (``id_map``: each chunk's new keys are made and recorded in the
   id map in the chunk's transaction), convert rows in Python through the same mapping.
   Copied (``copy_of``) columns are filled once every table is copied.
4. Before the copy each service id sequence is moved past the monolith's largest id
   plus ``id_headroom`` (never backwards), so rows created on either side never collide
   (PostgreSQL sequences, SQLite ``AUTOINCREMENT`` tables:
   :mod:`migration_plans.core.sequences`). Only single integer keys copied unchanged
   have such a sequence: text, uuid, composite and id-map keys are skipped.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from sqlalchemy import Connection, Engine, MetaData, Table, func, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from dualwrite.capture import set_capture
from dualwrite.config import RelaySettings
from dualwrite.engines import relay_engine
from dualwrite.metrics import BACKFILL_ROWS
from dualwrite.relay import relay_lock
from dualwrite.schema import backfill_key_table, backfill_table
from dualwrite.shapes import bindable, refresh_all_copies
from migration_plans.core import idmap
from migration_plans.core.database import libpq_url
from migration_plans.core.keys import KeyType
from migration_plans.core.mapping import (
    BoolEnumField,
    ContextMapping,
    DecimalCentsField,
    IdentityField,
    TableMapping,
    TimestampField,
)
from migration_plans.core.sequences import ID_HEADROOM, advance_sequence, max_id
from migration_plans.core.settings import mapping_for
from migration_plans.core.sqlnames import quote_ident, quote_literal

log = logging.getLogger("dualwrite.backfill")


@dataclass
class BackfillResult:
    """Rows copied per table by this run, and how fast."""

    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    finished: bool = False

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    @property
    def rows_per_second(self) -> float:
        return self.total / self.seconds if self.seconds > 0 else 0.0


class RateColumn(ProgressColumn):
    """Rows per second of a progress task."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "- rows/s", style="progress.data.speed")


def service_form_sql(pair: TableMapping) -> list[str]:
    """PostgreSQL expressions over the monolith table giving each service column's value."""
    expressions = [quote_ident(column) for column in pair.key.monolith_columns]
    for item in pair.fields:
        column = quote_ident(item.monolith)
        if isinstance(item, DecimalCentsField):
            expressions.append(f"round({column} * {10**item.scale})::bigint")
        elif isinstance(item, BoolEnumField):
            expressions.append(
                f"CASE WHEN {column} IS NULL THEN NULL WHEN {column} "
                f"THEN {quote_literal(item.true_value)} ELSE {quote_literal(item.false_value)} END"
            )
        elif isinstance(item, IdentityField) and item.empty_string == "null":
            expressions.append(f"nullif({column}, '')")
        elif isinstance(item, TimestampField) and item.precision != "us":
            unit = "milliseconds" if item.precision == "ms" else "second"
            expressions.append(f"date_trunc('{unit}', {column})")
        else:
            expressions.append(column)
    return expressions


SQL_FIELDS = (IdentityField, DecimalCentsField, BoolEnumField, TimestampField)
"""Fields :func:`service_form_sql` compiles; a pair with others is copied in Python."""

Position = int | str | None
"""Where a table's copy stands: an integer key, another key's text, or None (start)."""


def integer_position(pair: TableMapping) -> bool:
    """Whether the pair's position is one integer column (``strangler_backfill.last_key``)."""
    return not pair.key.is_composite and pair.key.types[0] is KeyType.INTEGER


def position_of(pair: TableMapping, row: Any) -> int | str:
    """The position of a monolith row (mapping of monolith columns)."""
    if integer_position(pair):
        return int(row[pair.key.monolith])
    return pair.key.text_of(pair.monolith_key(row))


def position_values(pair: TableMapping, position: int | str) -> tuple[Any, ...]:
    """The key values a position stands for (monolith form)."""
    if isinstance(position, int):
        return (position,)
    return pair.key.values_of(position)


def copy_in_python(pair: TableMapping) -> bool:
    """Whether ``pair`` is copied through Python even between two PostgreSQL databases."""
    return pair.key.id_map or not all(isinstance(item, SQL_FIELDS) for item in pair.fields)


_COPY_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def copy_text_field(raw: str) -> str | None:
    """One field of PostgreSQL's COPY text format, unescaped (``\\N`` is NULL)."""
    if raw == "\\N":
        return None
    out: list[str] = []
    chars = iter(raw)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        following = next(chars, "")
        out.append(_COPY_ESCAPES.get(following, following))
    return "".join(out)


class Backfill:
    """Copies a context's monolith rows into its service database, resumably."""

    def __init__(
        self,
        settings: RelaySettings,
        *,
        chunk_size: int = 20_000,
        throttle: float = 0.0,
        id_headroom: int = ID_HEADROOM,
        monolith: Engine | None = None,
        service: Engine | None = None,
        mapping: ContextMapping | None = None,
    ) -> None:
        self.settings = settings
        self.context = settings.context
        self.chunk_size = chunk_size
        self.throttle = throttle
        self.id_headroom = id_headroom
        self.mapping = mapping or mapping_for(settings.context)
        self.monolith = monolith or relay_engine(settings.monolith_url)
        self.service = service or relay_engine(settings.service_url)
        both_pg = all(
            engine.dialect.name == "postgresql" for engine in (self.monolith, self.service)
        )
        self.both_pg = both_pg
        self._pg: dict[str, psycopg.Connection[Any]] = {}
        self._tables: dict[str, Table] = {}

    def close(self) -> None:
        for conn in self._pg.values():
            conn.close()

    # -- checkpoints ---------------------------------------------------------------------

    def checkpoints(self) -> dict[str, dict[str, Any]]:
        """The checkpoint row of every table of the context that has one.

        ``last_key`` is the table's position: an integer, or the key text of a key that
        is not one integer column (from ``strangler_backfill_key``).
        """
        with self.service.connect() as conn:
            rows = conn.execute(
                select(backfill_table).where(backfill_table.c.context == self.context)
            ).mappings()
            found = {row["table_name"]: dict(row) for row in rows}
            if self._text_positions():
                texts = conn.execute(
                    select(backfill_key_table.c.table_name, backfill_key_table.c.last_key).where(
                        backfill_key_table.c.context == self.context
                    )
                )
                for name, last_key in texts:
                    if name in found:
                        found[name]["last_key"] = last_key
            return found

    def _text_positions(self) -> bool:
        return any(not integer_position(pair) for pair in self.mapping.tables)

    def _start(self) -> dict[str, dict[str, Any]]:
        if self._text_positions():
            with self.service.begin() as conn:  # service databases migrated before it
                backfill_key_table.create(conn, checkfirst=True)
        existing = self.checkpoints()
        now = datetime.now(UTC)
        with self.service.begin() as conn:
            for pair in self.mapping.tables:
                if pair.name in existing:
                    continue
                total = self._count(pair)
                conn.execute(
                    insert(backfill_table).values(
                        context=self.context,
                        table_name=pair.name,
                        last_key=None,
                        rows_copied=0,
                        total_rows=total,
                        started_at=now,
                        updated_at=now,
                        finished_at=None,
                    )
                )
        with self.monolith.begin() as conn:
            relay_lock(conn, self.context)  # waits out a relay batch already under way
        return self.checkpoints()

    def _count(self, pair: TableMapping) -> int:
        with self.monolith.connect() as conn:
            table = self._table(pair)
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    def _save(self, conn: Any, pair: TableMapping, last_key: Position, copied: int) -> None:
        values: dict[str, Any] = {"updated_at": datetime.now(UTC)}
        if copied and isinstance(last_key, str):
            values.update(rows_copied=backfill_table.c.rows_copied + copied)
            self._save_text_position(conn, pair, last_key)
        elif copied:
            values.update(last_key=last_key, rows_copied=backfill_table.c.rows_copied + copied)
        else:
            values["finished_at"] = datetime.now(UTC)
        conn.execute(
            update(backfill_table)
            .where(
                backfill_table.c.context == self.context,
                backfill_table.c.table_name == pair.name,
            )
            .values(**values)
        )

    def _save_text_position(self, conn: Connection, pair: TableMapping, last_key: str) -> None:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(backfill_key_table).values(
            context=self.context, table_name=pair.name, last_key=last_key
        )
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["context", "table_name"],
                set_={"last_key": statement.excluded.last_key},
            )
        )

    # -- running -------------------------------------------------------------------------

    def run(self, *, progress: bool = True, max_chunks: int | None = None) -> BackfillResult:
        """Copy every table (resuming from checkpoints); ``max_chunks`` stops early (tests)."""
        # Checkpoints first (the relay holds monolith events back from now on), then capture.
        checkpoints = self._start()
        set_capture(self.monolith, self.context, enabled=True)
        # Service-created rows get ids past the monolith's from now on: never in a chunk.
        self.advance_sequences()
        result = BackfillResult()
        started = time.perf_counter()
        chunks = 0
        console = Console(stderr=True)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not progress,
        ) as bar:
            for pair in self.mapping.tables:
                state = checkpoints[pair.name]
                if state["finished_at"] is not None:
                    continue
                task = bar.add_task(
                    f"{self.context}.{pair.name}",
                    total=max(state["total_rows"] or 0, state["rows_copied"]),
                    completed=state["rows_copied"],
                )
                result.rows[pair.name] = 0
                chunks_of_table = self._chunks(pair, state["last_key"])
                try:
                    for copied in chunks_of_table:
                        chunks += 1
                        result.rows[pair.name] += copied
                        BACKFILL_ROWS.labels(self.context, pair.name).inc(copied)
                        bar.update(task, advance=copied)
                        if max_chunks is not None and chunks >= max_chunks:
                            result.seconds = time.perf_counter() - started
                            return result
                        if self.throttle:
                            time.sleep(self.throttle)
                finally:
                    chunks_of_table.close()
        self._refresh_copies()
        result.seconds = time.perf_counter() - started
        result.finished = True
        log.info(
            "backfill of %s done: %s rows in %.1fs (%.0f rows/s)",
            self.context,
            result.total,
            result.seconds,
            result.rows_per_second,
            extra={"request_id": f"backfill-{self.context}"},
        )
        return result

    def _table(self, pair: TableMapping, side: str = "monolith") -> Table:
        name = pair.monolith_table if side == "monolith" else pair.service_table
        if name not in self._tables:
            engine = self.monolith if side == "monolith" else self.service
            self._tables[name] = Table(name, MetaData(), autoload_with=engine)
        return self._tables[name]

    def _refresh_copies(self) -> None:
        """Fill every copied (``copy_of``) column from the service's referenced rows."""
        with self.service.begin() as conn:
            tables = {pair.name: self._table(pair, "service") for pair in self.mapping.tables}
            refresh_all_copies(conn, self.mapping, tables)

    def _copy_chunk_python(self, pair: TableMapping, last_key: Position) -> tuple[int, Position]:
        source = self._table(pair)
        keys = [source.c[name] for name in pair.key.monolith_columns]
        query = select(*(source.c[name] for name in pair.monolith_columns)).order_by(*keys)
        if last_key is not None:
            values = position_values(pair, last_key)
            after = keys[0] > values[0] if len(keys) == 1 else tuple_(*keys) > tuple_(*values)
            query = query.where(after)
        with self.monolith.connect() as conn:
            rows = [dict(row) for row in conn.execute(query.limit(self.chunk_size)).mappings()]
        target = self._table(pair, "service")
        with self.service.begin() as conn:
            if rows:
                converted = [pair.to_service(row) for row in rows]
                if pair.key.id_map:
                    self._map_keys(conn, pair, rows, converted)
                dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
                statement = dialect.insert(target).on_conflict_do_nothing(
                    index_elements=list(pair.key.service_columns)
                )
                conn.execute(statement, converted)
                last_key = position_of(pair, rows[-1])
            self._save(conn, pair, last_key, len(rows))
        return len(rows), last_key

    def _map_keys(
        self, conn: Connection, pair: TableMapping, rows: list[dict[str, Any]], converted: list[Any]
    ) -> None:
        """Give each row of an id-map pair its service key: the map's, or a new one recorded
        in this chunk's transaction."""
        texts = [pair.key.text_of(pair.monolith_key(row)) for row in rows]
        known = idmap.service_keys(conn, pair.name, texts)
        made = {text: str(uuid.uuid4()) for text in texts if text not in known}
        idmap.record(conn, pair.name, sorted(made.items()))
        column = pair.key.service
        for text, row in zip(texts, converted, strict=True):
            service_key = known.get(text) or made[text]
            row[column] = bindable(conn, pair.key.values_of(service_key, "service")[0])

    def _pg_connection(self, side: str) -> psycopg.Connection[Any]:
        conn = self._pg.get(side)
        if conn is None or conn.closed:
            engine = self.monolith if side == "monolith" else self.service
            url = engine.url.render_as_string(hide_password=False)
            conn = psycopg.connect(libpq_url(url), options="-c TimeZone=UTC")
            self._pg[side] = conn
        return conn

    def _chunks(self, pair: TableMapping, last_key: Position) -> Generator[int, None, None]:
        """Copy ``pair`` from ``last_key`` on; yields rows copied per committed chunk (0 last)."""
        if not self.both_pg or copy_in_python(pair):
            while True:
                copied, last_key = self._copy_chunk_python(pair, last_key)
                yield copied
                if not copied:
                    return
        # PostgreSQL: read the next chunk from the monolith while this one is written.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="backfill-read") as reader:
            ahead = reader.submit(self._read_pg, pair, last_key)
            try:
                while True:
                    data, count, newest = ahead.result()
                    if count:
                        ahead = reader.submit(self._read_pg, pair, newest)
                    self._write_pg(pair, data, count, last_key, newest)
                    last_key = newest if count else last_key
                    yield count
                    if not count:
                        return
            finally:
                ahead.cancel()

    def copy_chunk(self, pair: TableMapping, last_key: Position) -> tuple[int, Position]:
        """Copy one chunk of ``pair`` after ``last_key``: rows copied and the new position."""
        if not self.both_pg or copy_in_python(pair):
            return self._copy_chunk_python(pair, last_key)
        data, count, newest = self._read_pg(pair, last_key)
        self._write_pg(pair, data, count, last_key, newest)
        return count, newest if count else last_key

    def _read_pg(self, pair: TableMapping, last_key: Position) -> tuple[bytes, int, Position]:
        """One chunk in service form, as COPY text, with its row count and last position."""
        keys = ", ".join(quote_ident(column) for column in pair.key.monolith_columns)
        where, params = _after(keys, pair, last_key)
        query = (
            f"SELECT {', '.join(service_form_sql(pair))} FROM {quote_ident(pair.monolith_table)} "
            f"{where} ORDER BY {keys} LIMIT {int(self.chunk_size)}"
        )
        source = self._pg_connection("monolith")
        with source.cursor() as cursor, cursor.copy(f"COPY ({query}) TO STDOUT", params) as copy:
            data = b"".join(bytes(block) for block in copy)
        source.rollback()
        count = data.count(b"\n")
        if not count:
            return data, 0, None
        last_line = data[data.rfind(b"\n", 0, len(data) - 1) + 1 :].rstrip(b"\n")
        fields = last_line.decode().split("\t")[: len(pair.key.monolith_columns)]
        parts = [copy_text_field(field) for field in fields]
        if integer_position(pair):
            return data, count, int(parts[0] or 0)
        return data, count, pair.key.text_of(parts)

    def _write_pg(
        self, pair: TableMapping, data: bytes, count: int, last_key: Position, newest: Position
    ) -> None:
        """Insert one chunk and move its checkpoint, in one service transaction.

        Straight COPY into the table when no row of the chunk's key range exists yet
        (the usual case); through a staging table with ``ON CONFLICT DO NOTHING`` otherwise.
        """
        target = self._pg_connection("service")
        table = quote_ident(pair.service_table)
        keys = ", ".join(quote_ident(column) for column in pair.key.service_columns)
        columns = ", ".join(quote_ident(name) for name in pair.service_columns)
        with target.cursor() as cursor:
            # The chunk's rows and its checkpoint commit in this one transaction, so a crash
            # that loses this asynchronous commit loses both together: the resume starts
            # from the previous checkpoint and copies the chunk again. (WAL is sequential:
            # any later synchronous commit, such as the relay's, makes this one durable.)
            cursor.execute("SET LOCAL synchronous_commit = off")
            if count and newest is not None:
                after, params = _after(keys, pair, last_key)
                upto = position_values(pair, newest)
                marks = ", ".join(["%s"] * len(upto))
                condition = f"({keys}) <= ({marks})"
                condition = f"{after[len('WHERE ') :]} AND {condition}" if after else condition
                cursor.execute(
                    f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {condition})",
                    [*params, *upto],
                )
                occupied = (cursor.fetchone() or (True,))[0]
                destination = table
                if occupied:
                    destination = quote_ident(f"strangler_stage_{pair.service_table}")
                    cursor.execute(
                        f"CREATE TEMP TABLE IF NOT EXISTS {destination} AS "
                        f"SELECT {columns} FROM {table} WITH NO DATA"
                    )
                    cursor.execute(f"TRUNCATE {destination}")
                with cursor.copy(f"COPY {destination} ({columns}) FROM STDIN") as copy:
                    copy.write(data)
                if occupied:
                    cursor.execute(
                        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {destination} "
                        f"ON CONFLICT ({keys}) DO NOTHING"
                    )
                if isinstance(newest, str):
                    cursor.execute(
                        "UPDATE strangler_backfill SET updated_at = clock_timestamp(), "
                        "rows_copied = rows_copied + %s WHERE context = %s AND table_name = %s",
                        [count, self.context, pair.name],
                    )
                    cursor.execute(
                        "INSERT INTO strangler_backfill_key (context, table_name, last_key) "
                        "VALUES (%s, %s, %s) ON CONFLICT (context, table_name) "
                        "DO UPDATE SET last_key = excluded.last_key",
                        [self.context, pair.name, newest],
                    )
                else:
                    cursor.execute(
                        "UPDATE strangler_backfill SET updated_at = clock_timestamp(), "
                        "last_key = %s, rows_copied = rows_copied + %s "
                        "WHERE context = %s AND table_name = %s",
                        [newest, count, self.context, pair.name],
                    )
            else:
                cursor.execute(
                    "UPDATE strangler_backfill SET updated_at = clock_timestamp(), "
                    "finished_at = clock_timestamp() WHERE context = %s AND table_name = %s",
                    [self.context, pair.name],
                )
        target.commit()

    def advance_sequences(self) -> dict[str, int]:
        """Move each service id sequence past the monolith's ids (+ headroom), never backwards.

        The one rule every sequence move follows (:func:`advance_sequence`, a repair's
        too). A SQLite service table without ``AUTOINCREMENT`` has no sequence to move.
        """
        moved: dict[str, int] = {}
        for pair in self.mapping.tables:
            if pair.key.id_map or pair.key.is_composite or pair.key.types[0] is not KeyType.INTEGER:
                continue  # only an integer key copied unchanged shares the id space
            with self.monolith.connect() as conn:
                top = max_id(conn, pair.monolith_table, pair.key.monolith)
            if top is None:
                continue  # not an integer key: no sequence to keep ahead
            with self.service.begin() as conn:
                value = advance_sequence(
                    conn, pair.service_table, pair.key.service, past=top, headroom=self.id_headroom
                )
            if value is not None:
                moved[pair.service_table] = value
        return moved


def _after(keys: str, pair: TableMapping, last_key: Position) -> tuple[str, list[Any]]:
    """``WHERE (keys) > (position)`` and its parameters (none from the start)."""
    if last_key is None:
        return "", []
    values = list(position_values(pair, last_key))
    return f"WHERE ({keys}) > ({', '.join(['%s'] * len(values))})", values
