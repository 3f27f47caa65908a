"""Compare one key range of one table pair: bucket checksums, narrowing, row diffs.

Each side is read in one snapshot. The first level is a single scan per side that
yields a count and an XOR of row hashes per bucket of ``levels[0]`` keys (both sides
run concurrently); buckets that differ are narrowed to ``levels[1]``, ... keys by
re-reading only their key ranges; the rows of the smallest differing buckets are
fetched from both sides and diffed through the mapping.

    result = run_segment(spec)            # in-process, or as a Celery task
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from migration_plans.core.keys import KeyMapping, Side
from migration_plans.core.mapping import TableMapping
from reconciler.connections import engine_for, snapshot
from reconciler.diff import Divergence, Key, compare_rows
from reconciler.exceptions import DatabaseError
from reconciler.schema import (
    ID_MAP_ALIAS,
    KEY_LABEL,
    UNMAPPED,
    HashMode,
    KeyKind,
    PairSchema,
    Role,
    inspect_pair,
)
from reconciler.sql import (
    Range,
    bucket_sql,
    key_bucket_sql,
    prepare,
    quote_ident,
    ranges_sql,
    row_hashes_sql,
)
from reconciler.values import DbText, decode_row, fetch_columns

Buckets = dict[int, tuple[int, int]]
Rows = dict[Key, dict[str, Any]]
FETCH_CHUNK = 500
DEFAULT_LEVELS = (256, 16, 4)
"""Keys per bucket of the first scan, then of each narrowing re-read. Small first
buckets cost the scan's hash aggregate next to nothing on a range key (its groups come
in table order) and make each differing bucket's re-read four times cheaper than 1,024."""
BUCKET_CHUNK = 5000
"""Key-hash buckets per row-hash query (each query scans the table once)."""
ESTIMATE_TRUSTED = 10_000
"""Below this many rows by PostgreSQL's estimate, the rows are counted instead."""


class SegmentSpec(BaseModel):
    """Everything a worker needs to compare one key range (JSON-serialisable)."""

    model_config = ConfigDict(frozen=True)

    monolith_url: str
    service_url: str
    mapping: TableMapping
    hash_mode: HashMode
    lo: int
    hi: int
    offset: int = 0
    levels: tuple[int, ...] = DEFAULT_LEVELS
    key_kind: KeyKind = "int"
    key_buckets: int = 0
    bucket_part: int | None = None
    """The key column that alone buckets a composite text-path key (the planner's
    choice, so that a worker's buckets match its statistics); None chains all."""
    parallel_workers: int = 0
    """PostgreSQL parallel workers each side's scans may add (0: one backend a side)."""
    sources: tuple[TableMapping, ...] = ()
    """The pairs ``mapping``'s copied columns copy from (``copy_of``)."""


class SegmentResult(BaseModel):
    """What one key range held and where it diverged."""

    table: str
    lo: int
    hi: int
    monolith_rows: int = 0
    service_rows: int = 0
    buckets: int = 0
    mismatched_buckets: int = 0
    rows_fetched: int = 0
    divergences: list[Divergence] = []
    seconds: float = 0.0
    worker: str = ""


def merge_ranges(ranges: Iterable[Range]) -> list[Range]:
    """Sorted, with touching ranges joined."""
    merged: list[Range] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def bucket_range(bucket: int, size: int, offset: int) -> Range:
    return (offset + bucket * size, offset + (bucket + 1) * size)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SideReader:
    """Queries against one side, all inside one snapshot connection."""

    def __init__(
        self, pair: PairSchema, role: Role, conn: Connection, parallel_workers: int = 0
    ) -> None:
        self.pair, self.role, self.conn = pair, role, conn
        self.side = pair.side(role)
        self.from_, self.table = self.side.from_clause()
        self.dialect = conn.dialect.name
        prepare(conn, pair, role)
        if self.dialect == "postgresql":
            # For this snapshot's transaction only. The two sides already scan at once;
            # more workers contend with them on a shared server and take cores from the
            # database's own traffic (a parallel bucket scan ran 1.15 s serial, 1.33 s
            # with two workers, both sides of 1M rows on one 2-core server).
            conn.exec_driver_sql(
                f"SET LOCAL max_parallel_workers_per_gather = {int(parallel_workers)}"
            )

    def buckets(self, size: int, offset: int, ranges: Sequence[Range]) -> Buckets:
        found: Buckets = {}
        for chunk in _chunks(list(ranges), 200):
            sql = bucket_sql(self.pair, self.role, self.dialect, size, offset, chunk)
            with self.failing(), self._hash_aggregate():
                for bucket, count, digest in self.conn.exec_driver_sql(sql):
                    found[int(bucket)] = (int(count), int(digest or 0))
        return found

    def key_buckets(self, buckets: int) -> Buckets:
        """Text keys: one scan, count and XOR per key-hash bucket."""
        sql = key_bucket_sql(self.pair, self.role, self.dialect, buckets)
        with self.failing(), self._hash_aggregate():
            return {
                int(bucket): (int(count), int(digest or 0))
                for bucket, count, digest in self.conn.exec_driver_sql(sql)
            }

    @contextmanager
    def _hash_aggregate(self) -> Iterator[None]:
        """A bucket query has at most a few thousand groups (a segment's first-level
        buckets, or a chunk of ranges' sub-buckets), but PostgreSQL's estimate of them
        can be far off (none without statistics on the bucket expression, and ANALYZE's
        sample misjudged 3,906 groups of 256 rows as 130,000): it then sorts, on disk at a
        million rows, where a hash aggregate fits in memory. Sorting is off for that one
        statement."""
        if self.dialect != "postgresql":
            yield
            return
        self.conn.exec_driver_sql("SET LOCAL enable_sort = off")
        yield  # a failed statement ends the snapshot's transaction, and the setting with it
        self.conn.exec_driver_sql("RESET enable_sort")

    @contextmanager
    def failing(self) -> Iterator[None]:
        """Name this side's database in its errors (the other side's work runs meanwhile)."""
        try:
            yield
        except SQLAlchemyError as exc:
            url = self.conn.engine.url.render_as_string(hide_password=True)
            raise DatabaseError(f"{self.role} database {url}: {exc}") from exc

    def rows(self, where: sa.ColumnElement[bool] | sa.TextClause) -> Rows:
        """Rows matching ``where`` by key; values Python cannot hold as :class:`DbText`.

        Keyed by the key as reported: an int for an integer key, else the key text.
        Copied columns are brought to their canonical (service) form here, through the
        field they copy.
        """
        query = (
            sa.select(*fetch_columns(self.side, self.dialect)).select_from(self.from_).where(where)
        )
        with self.failing():
            fetched = [
                decode_row(self.side, tuple(row), self.conn.dialect)
                for row in self.conn.execute(query)
            ]
        as_key = int if self.pair.reports_int else str
        found: Rows = {}
        for row in fetched:
            for name, field in self.side.copies:
                row[name] = _copied(field, self.role, row[name])
            found[as_key(row[KEY_LABEL])] = row
        return found

    def row_hashes(self, buckets: int, chosen: Sequence[int]) -> dict[str, int]:
        """Text keys: key text -> row hash of every row in the chosen buckets (one scan
        per ``BUCKET_CHUNK`` buckets; no row is fetched)."""
        found: dict[str, int] = {}
        for chunk in _chunks(list(chosen), BUCKET_CHUNK):
            sql = row_hashes_sql(self.pair, self.role, self.dialect, buckets, chunk)
            with self.failing():
                # The driver's tuples as they come (key text, bigint): tens of thousands
                # of rows, which SQLAlchemy's rows would cost twice the CPU to pass through.
                found.update(self.conn.exec_driver_sql(sql).cursor.fetchall())
        return found

    def rows_in(self, ranges: Sequence[Range]) -> Rows:
        found: Rows = {}
        for chunk in _chunks(list(ranges), 200):
            found.update(self.rows(sa.text(ranges_sql(self.side.key, chunk))))
        return found

    def rows_for(self, keys: Sequence[Key]) -> Rows:
        found: Rows = {}
        for chunk in _chunks(sorted(keys, key=str), FETCH_CHUNK):
            found.update(self.rows(self._keys_where(chunk)))
        return found

    def _keys_where(self, keys: Sequence[Key]) -> sa.ColumnElement[bool]:
        """Rows of ``keys`` (as reported), by the key columns so an index serves it."""
        side, key = self.side, self.pair.mapping.key
        columns = [self.table.c[name] for name in side.key_columns]
        if len(columns) == 1 and not side.id_map_pair:
            as_bound = _binder(columns[0].type)
            bound = [as_bound(k) for k in keys]
            return columns[0].in_([value for value in bound if value is not None])
        texts = [str(k) for k in keys]
        if side.id_map_pair:
            # Mapped rows by the monolith key the map gives them; a row the map does not
            # know (reported as UNMAPPED + its own key) by its own key.
            monolith_key: sa.ColumnElement[str] = sa.literal_column(
                f"{quote_ident(ID_MAP_ALIAS)}.{quote_ident('monolith_key')}", sa.Text()
            )
            own = [_typed(key, t.removeprefix(UNMAPPED), "service") for t in texts]
            mapped = [t for t in texts if not t.startswith(UNMAPPED)]
            where = monolith_key.in_(sa.bindparam("monolith_keys", mapped, expanding=True))
            unmapped = [
                values[0]
                for t, values in zip(texts, own, strict=True)
                if values and t.startswith(UNMAPPED)
            ]
            return sa.or_(where, columns[0].in_(unmapped)) if unmapped else where
        typed = [values for values in (_typed(key, t, self.role) for t in texts) if values]
        return sa.tuple_(*columns).in_(typed)


def _typed(key: KeyMapping, text: str, side: Side) -> tuple[Any, ...] | None:
    """The typed key values of a key text; None for one this side cannot hold."""
    try:
        return key.values_of(text, side)
    except ValueError:
        return None


def _copied(field: Any, role: Role, value: Any) -> Any:
    """A copied column's canonical form (the raw value when the field cannot convert it)."""
    if value is None or isinstance(value, DbText):
        return value
    try:
        if role == "monolith":
            return field.to_service(value)
        return field.to_service(field.to_monolith(value))
    except (ValueError, TypeError, ArithmeticError):
        return DbText(str(value))


def _binder(column_type: Any) -> Callable[[Key], Any]:
    """Turn a key as reported (int or text) back into the column's Python type (e.g. UUID);
    None for a key the column cannot hold (a key text of the other side's form)."""
    try:
        python_type = column_type.python_type
    except (NotImplementedError, AttributeError):
        return lambda key: key
    if python_type is str:
        return str

    def bind(key: Key) -> Any:
        if isinstance(key, python_type):
            return key
        try:
            return python_type(key)
        except (TypeError, ValueError):
            return None

    return bind


def _differing(left: Buckets, right: Buckets, size: int, offset: int) -> list[Range]:
    keys = set(left) | set(right)
    return merge_ranges(bucket_range(b, size, offset) for b in keys if left.get(b) != right.get(b))


def compare_fetched(mapping: TableMapping, left: Rows, right: Rows) -> list[Divergence]:
    found = []
    for key in sorted(set(left) | set(right)):
        divergence = compare_rows(mapping, key, left.get(key), right.get(key))
        if divergence is not None:
            found.append(divergence)
    return found


def run_segment(spec: SegmentSpec, pair: PairSchema | None = None) -> SegmentResult:
    """Compare keys ``[spec.lo, spec.hi)`` of one pair; safe to run on any worker."""
    started = time.perf_counter()
    monolith, service = engine_for(spec.monolith_url), engine_for(spec.service_url)
    pair = pair or inspect_pair(
        spec.mapping,
        monolith,
        service,
        spec.hash_mode,
        sources={source.name: source for source in spec.sources},
    )
    if pair.bucket_part != spec.bucket_part:
        pair = replace(pair, bucket_part=spec.bucket_part)
    result = SegmentResult(table=spec.mapping.name, lo=spec.lo, hi=spec.hi)
    with (
        snapshot(monolith) as left_conn,
        snapshot(service) as right_conn,
        ThreadPoolExecutor(max_workers=2) as pool,
    ):
        left = SideReader(pair, "monolith", left_conn, spec.parallel_workers)
        right = SideReader(pair, "service", right_conn, spec.parallel_workers)
        if spec.key_kind == "text":
            _compare_text_keys(spec, left, right, pool, result)
            result.seconds = time.perf_counter() - started
            return result
        ranges: list[Range] = [(spec.lo, spec.hi)]
        for depth, size in enumerate(spec.levels):
            left_future = pool.submit(left.buckets, size, spec.offset, ranges)
            right_buckets = right.buckets(size, spec.offset, ranges)
            left_buckets = left_future.result()
            if depth == 0:
                result.monolith_rows = sum(n for n, _ in left_buckets.values())
                result.service_rows = sum(n for n, _ in right_buckets.values())
                result.buckets = len(set(left_buckets) | set(right_buckets))
            ranges = _differing(left_buckets, right_buckets, size, spec.offset)
            if depth == 0:
                result.mismatched_buckets = len(ranges)
            if not ranges:
                break
        if ranges:
            left_future_rows = pool.submit(left.rows_in, ranges)
            right_rows = right.rows_in(ranges)
            left_rows = left_future_rows.result()
            result.rows_fetched = len(left_rows) + len(right_rows)
            result.divergences = compare_fetched(spec.mapping, left_rows, right_rows)
    result.seconds = time.perf_counter() - started
    return result


def _compare_text_keys(
    spec: SegmentSpec,
    left: SideReader,
    right: SideReader,
    pool: ThreadPoolExecutor,
    result: SegmentResult,
) -> None:
    """Text keys have no ranges: bucket by key hash in one scan, fetch differing buckets."""
    left_future = pool.submit(left.key_buckets, spec.key_buckets)
    right_buckets = right.key_buckets(spec.key_buckets)
    left_buckets = left_future.result()
    result.monolith_rows = sum(n for n, _ in left_buckets.values())
    result.service_rows = sum(n for n, _ in right_buckets.values())
    result.buckets = len(set(left_buckets) | set(right_buckets))
    chosen = sorted(
        b
        for b in set(left_buckets) | set(right_buckets)
        if left_buckets.get(b) != right_buckets.get(b)
    )
    result.mismatched_buckets = len(chosen)
    if chosen:
        # The differing buckets' row hashes name the differing keys; only those rows
        # are fetched (by key, through the primary key), not the buckets' every row.
        left_hashes = pool.submit(left.row_hashes, spec.key_buckets, chosen)
        right_hashes = right.row_hashes(spec.key_buckets, chosen)
        mine = left_hashes.result()
        keys = sorted(
            k for k in set(mine) | set(right_hashes) if mine.get(k) != right_hashes.get(k)
        )
        left_rows_future = pool.submit(left.rows_for, keys)
        right_rows = right.rows_for(keys)
        left_rows = left_rows_future.result()
        result.rows_fetched = len(left_rows) + len(right_rows)
        result.divergences = compare_fetched(spec.mapping, left_rows, right_rows)


def fetch_keys(
    pair: PairSchema, monolith: Engine, service: Engine, keys: Sequence[Key]
) -> tuple[Rows, Rows]:
    """Current rows of ``keys`` on both sides, each side in one fresh snapshot."""
    with snapshot(monolith) as left_conn, snapshot(service) as right_conn:
        left = SideReader(pair, "monolith", left_conn).rows_for(keys)
        right = SideReader(pair, "service", right_conn).rows_for(keys)
    return left, right


def row_counts(pair: PairSchema, monolith: Engine, service: Engine) -> tuple[int, int]:
    """Rows on each side (text keys size their hash buckets from it)."""
    counts = []
    for role, engine in (("monolith", monolith), ("service", service)):
        side = pair.side(role)  # type: ignore[arg-type]
        with snapshot(engine) as conn:
            sql = f"SELECT count(*) FROM {quote_ident(side.table)}"
            counts.append(int(conn.exec_driver_sql(sql).scalar() or 0))
    return counts[0], counts[1]


def estimated_rows(pair: PairSchema, monolith: Engine, service: Engine) -> int:
    """Rows of the larger side, to size key-hash buckets: PostgreSQL's own estimate when
    the table has statistics (no scan), else a count."""
    found = []
    for role, engine in (("monolith", monolith), ("service", service)):
        side = pair.side(role)  # type: ignore[arg-type]
        with snapshot(engine) as conn:
            estimate = -1.0
            if conn.dialect.name == "postgresql":
                estimate = float(
                    conn.exec_driver_sql(
                        "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%(t)s)",
                        {"t": quote_ident(side.table)},
                    ).scalar()
                    or -1
                )
            if estimate < ESTIMATE_TRUSTED:  # never analyzed (-1), or small: count
                sql = f"SELECT count(*) FROM {quote_ident(side.table)}"
                estimate = float(conn.exec_driver_sql(sql).scalar() or 0)
            found.append(int(estimate))
    return max(found)


def key_bounds(pair: PairSchema, monolith: Engine, service: Engine) -> tuple[int, int] | None:
    """(min, max) key over both sides; None when both tables are empty."""
    bounds: list[int] = []
    for role, engine in (("monolith", monolith), ("service", service)):
        side = pair.side(role)  # type: ignore[arg-type]
        k = quote_ident(side.key)
        with snapshot(engine) as conn:
            row = conn.exec_driver_sql(
                f"SELECT min({k}), max({k}) FROM {quote_ident(side.table)}"
            ).one()
        bounds.extend(int(value) for value in row if value is not None)
    return (min(bounds), max(bounds)) if bounds else None
