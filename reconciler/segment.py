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
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from migration_plans.core.mapping import TableMapping
from reconciler.connections import engine_for, snapshot
from reconciler.diff import Divergence, Key, compare_rows
from reconciler.exceptions import DatabaseError
from reconciler.schema import HashMode, KeyKind, PairSchema, Role, inspect_pair
from reconciler.sql import (
    Range,
    bucket_sql,
    in_buckets_sql,
    key_bucket_sql,
    prepare,
    quote_ident,
    ranges_sql,
)
from reconciler.values import decode_row, fetch_columns

Buckets = dict[int, tuple[int, int]]
Rows = dict[Key, dict[str, Any]]
FETCH_CHUNK = 500


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
    levels: tuple[int, ...] = (1024, 32, 4)
    key_kind: KeyKind = "int"
    key_buckets: int = 0


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

    def __init__(self, pair: PairSchema, role: Role, conn: Connection) -> None:
        self.pair, self.role, self.conn = pair, role, conn
        self.side = pair.side(role)
        self.table = self.side.selectable()
        self.dialect = conn.dialect.name
        prepare(conn, pair, role)

    def buckets(self, size: int, offset: int, ranges: Sequence[Range]) -> Buckets:
        found: Buckets = {}
        for chunk in _chunks(list(ranges), 200):
            sql = bucket_sql(self.pair, self.role, self.dialect, size, offset, chunk)
            with self.failing():
                for bucket, count, digest in self.conn.exec_driver_sql(sql):
                    found[int(bucket)] = (int(count), int(digest or 0))
        return found

    def key_buckets(self, buckets: int) -> Buckets:
        """Text keys: one scan, count and XOR per key-hash bucket."""
        sql = key_bucket_sql(self.pair, self.role, self.dialect, buckets)
        with self.failing():
            return {
                int(bucket): (int(count), int(digest or 0))
                for bucket, count, digest in self.conn.exec_driver_sql(sql)
            }

    @contextmanager
    def failing(self) -> Iterator[None]:
        """Name this side's database in its errors (the other side's work runs meanwhile)."""
        try:
            yield
        except SQLAlchemyError as exc:
            url = self.conn.engine.url.render_as_string(hide_password=True)
            raise DatabaseError(f"{self.role} database {url}: {exc}") from exc

    def rows(self, where: sa.ColumnElement[bool] | sa.TextClause) -> Rows:
        """Rows matching ``where`` by key; values Python cannot hold as :class:`DbText`."""
        query = sa.select(*fetch_columns(self.side, self.table, self.dialect)).where(where)
        as_key = int if self.pair.key_kind == "int" else str
        with self.failing():
            fetched = [
                decode_row(self.side, tuple(row), self.conn.dialect)
                for row in self.conn.execute(query)
            ]
        return {as_key(row[self.side.key]): row for row in fetched}

    def rows_in_buckets(self, buckets: int, chosen: Sequence[int]) -> Rows:
        found: Rows = {}
        for chunk in _chunks(list(chosen), FETCH_CHUNK):
            where = in_buckets_sql(self.side.key, self.dialect, buckets, chunk)
            found.update(self.rows(sa.text(where)))
        return found

    def rows_in(self, ranges: Sequence[Range]) -> Rows:
        found: Rows = {}
        for chunk in _chunks(list(ranges), 200):
            found.update(self.rows(sa.text(ranges_sql(self.side.key, chunk))))
        return found

    def rows_for(self, keys: Sequence[Key]) -> Rows:
        found: Rows = {}
        column = self.table.c[self.side.key]
        as_bound = _binder(column.type)
        for chunk in _chunks(sorted(keys), FETCH_CHUNK):
            found.update(self.rows(column.in_([as_bound(key) for key in chunk])))
        return found


def _binder(column_type: Any) -> Any:
    """Turn a key as reported (int or text) back into the column's Python type (e.g. UUID)."""
    try:
        python_type = column_type.python_type
    except (NotImplementedError, AttributeError):
        return lambda key: key
    if python_type in (int, str):
        return lambda key: key
    return lambda key: key if isinstance(key, python_type) else python_type(key)


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
    pair = pair or inspect_pair(spec.mapping, monolith, service, spec.hash_mode)
    result = SegmentResult(table=spec.mapping.name, lo=spec.lo, hi=spec.hi)
    with (
        snapshot(monolith) as left_conn,
        snapshot(service) as right_conn,
        ThreadPoolExecutor(max_workers=2) as pool,
    ):
        left = SideReader(pair, "monolith", left_conn)
        right = SideReader(pair, "service", right_conn)
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
        left_rows_future = pool.submit(left.rows_in_buckets, spec.key_buckets, chosen)
        right_rows = right.rows_in_buckets(spec.key_buckets, chosen)
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
