"""Reconcile a context: check every pair, fan key ranges out, re-check, build the report.

    report = reconcile(mapping, monolith_url, service_url)             # in-process
    report = reconcile(mapping, m_url, s_url, executor=CeleryExecutor(app))  # on workers

Every pair is checked against both databases before the first scan (bad input fails
fast). Divergent keys are re-read after ``grace_seconds``: a key that agrees now is
dropped, one that is still changing is re-read again (up to ``max_rechecks``), one
with a pending outbox event is reported as in flight.

An incremental run (``incremental=True``) compares only the keys the outboxes name
since each table's last clean run (:mod:`reconciler.incremental`); a table without
one is checked in full, and the report says so.
"""

from __future__ import annotations

import itertools
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from migration_plans.core.mapping import ContextMapping, TableMapping
from reconciler import metrics
from reconciler.connections import engine_for, require_database
from reconciler.diff import Divergence, Key, root_cause_hints
from reconciler.exceptions import ReconcileError, UnknownTable
from reconciler.incremental import Baseline, changed_keys, check_keys, outbox_marks, why_full
from reconciler.limits import MAX_PARALLEL_WORKERS
from reconciler.pending import STUCK_AFTER_S, OutboxPending, PendingChanges
from reconciler.report import Report, RunKind, TableReport
from reconciler.schema import HashMode, PairSchema, inspect_pair
from reconciler.segment import (
    DEFAULT_LEVELS,
    SegmentResult,
    SegmentSpec,
    compare_fetched,
    estimated_rows,
    fetch_keys,
    key_bounds,
    row_counts,
    run_segment,
)
from reconciler.sql import key_hash_statistics_sql, quote_ident, statistics_sql


@dataclass(frozen=True, kw_only=True)
class ReconcileOptions:
    """Tuning knobs; the defaults suit tables up to tens of millions of rows."""

    levels: tuple[int, ...] = DEFAULT_LEVELS
    segment_size: int = 1024 * 1024
    grace_seconds: float = 1.0
    max_rechecks: int = 3
    stuck_after: float = STUCK_AFTER_S
    hash_mode: HashMode | None = None
    create_statistics: bool = True
    statistics_min_rows: int = 20_000
    parallel_workers: int = 0
    """PostgreSQL parallel workers each side's scans may add (``max_parallel_workers_per_gather``
    for the reconciler's own snapshots): 0 keeps a run to one backend per side and segment."""

    def __post_init__(self) -> None:
        sizes = self.sizes
        if any(big % small for big, small in itertools.pairwise(sizes)):
            raise ValueError(f"each of segment_size, levels must divide the previous: {sizes}")
        if not 0 <= self.parallel_workers <= MAX_PARALLEL_WORKERS:
            raise ValueError(
                f"parallel_workers must be 0 to {MAX_PARALLEL_WORKERS}, not {self.parallel_workers}"
            )

    @property
    def sizes(self) -> tuple[int, ...]:
        """The segment size, then the bucket size of each level."""
        return (self.segment_size, *self.levels)


@dataclass
class Progress:
    """What the progress bar shows."""

    table: str
    segments_total: int
    segments_done: int = 0
    rows_done: int = 0
    started: float = field(default_factory=time.perf_counter)


ProgressCallback = Callable[[Progress], None]


class Executor(Protocol):
    """Runs segment specs somewhere and calls ``on_done`` as each finishes."""

    name: str

    def run(
        self, specs: Sequence[SegmentSpec], on_done: Callable[[SegmentResult], None]
    ) -> list[SegmentResult]: ...


class LocalExecutor:
    """Runs segments one after another in this process."""

    name = "local"

    def __init__(self, pairs: dict[str, PairSchema] | None = None) -> None:
        self.pairs = pairs or {}

    def run(
        self, specs: Sequence[SegmentSpec], on_done: Callable[[SegmentResult], None]
    ) -> list[SegmentResult]:
        results = []
        for spec in specs:
            result = run_segment(spec, self.pairs.get(spec.mapping.name))
            on_done(result)
            results.append(result)
        return results


def select_tables(mapping: ContextMapping, tables: Sequence[str] | None) -> list[TableMapping]:
    """The pairs to reconcile; :class:`UnknownTable` names the known ones."""
    if not tables:
        return list(mapping.tables)
    known = {table.name: table for table in mapping.tables}
    unknown = [name for name in tables if name not in known]
    if unknown:
        raise UnknownTable(
            f"context {mapping.context!r} has no table {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(known)})"
        )
    return [known[name] for name in tables]


def per_key_value(options: ReconcileOptions, rows_per_key: int) -> ReconcileOptions:
    """Bucket sizes in first-key-column values for a composite key with ``rows_per_key``
    rows per value (a power of two), so that a bucket holds about as many rows as an
    integer key's: the sizes divided by it (at least one value; levels that become
    equal merge), when each still divides the one before."""
    if rows_per_key <= 1:
        return options
    segment_size, *levels = (max(1, size // rows_per_key) for size in options.sizes)
    merged = tuple(dict.fromkeys(levels))
    try:
        return replace(options, segment_size=segment_size, levels=merged)
    except ValueError:
        return options


def plan_segments(
    pair: PairSchema, urls: tuple[str, str], bounds: tuple[int, int], options: ReconcileOptions
) -> list[SegmentSpec]:
    """Key ranges of ``segment_size`` covering ``bounds``, aligned to the bucket grid."""
    lo, hi = bounds
    offset = min(0, lo)
    step = options.segment_size
    start = offset + (lo - offset) // step * step
    return [
        SegmentSpec(
            monolith_url=urls[0],
            service_url=urls[1],
            mapping=pair.mapping,
            hash_mode=pair.hash_mode,
            lo=seg_lo,
            hi=seg_lo + step,
            offset=offset,
            levels=options.levels,
            sources=pair.sources,
            parallel_workers=options.parallel_workers,
        )
        for seg_lo in range(start, hi + 1, step)
    ]


def text_key_segments(
    pair: PairSchema, urls: tuple[str, str], rows: int, options: ReconcileOptions
) -> list[SegmentSpec]:
    """Text keys have no ranges to split: one segment, hashed into buckets of about
    ``levels[0]`` rows: small enough that the row hashes of the differing ones are few,
    few enough for a cheap hash aggregate (the groups of a key-hash bucket are scattered
    through the table, and more of them cost the scan more than they save)."""
    size = options.levels[0]
    # A power of two: the count (and the statistics on its expression) changes only when
    # the table doubles or halves.
    buckets = 1 << max(0, math.ceil(math.log2(max(1.0, rows / size))))
    spec = SegmentSpec(
        monolith_url=urls[0],
        service_url=urls[1],
        mapping=pair.mapping,
        hash_mode=pair.hash_mode,
        lo=0,
        hi=buckets,
        levels=options.levels,
        sources=pair.sources,
        key_kind="text",
        key_buckets=buckets,
        bucket_part=pair.bucket_part,
        parallel_workers=options.parallel_workers,
    )
    return [spec]


def ensure_statistics(
    engine: Engine,
    pair: PairSchema,
    role: str,
    size: int,
    min_rows: int,
    made: tuple[str, str] | None = None,
) -> str:
    """Let PostgreSQL plan bucket checksums as a parallel hash aggregate (best effort).

    Without extended statistics on ``key / size`` (or ``made``: the name and statement
    of other statistics, e.g. on a key-hash bucket) the planner expects one group per
    row and picks a serial sort. Returns a note for the report ('' when nothing to say).
    """
    if engine.dialect.name != "postgresql":
        return ""
    side = pair.side(role)  # type: ignore[arg-type]
    name, statement = made or statistics_sql(side, size)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"),
                {"t": quote_ident(side.table)},
            ).scalar()
            if (rows or 0) < min_rows:
                return ""
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_statistic_ext WHERE stxname = :n"), {"n": name}
            ).scalar()
            if exists:
                return ""
            conn.exec_driver_sql(statement)
            conn.exec_driver_sql(f"ANALYZE {quote_ident(side.table)}")
            conn.commit()
    except SQLAlchemyError as exc:
        return f"{role}: could not create statistics {name} ({exc.__class__.__name__}); slower plan"
    return f"{role}: created statistics {name} for a parallel hash aggregate"


def recheck(
    pair: PairSchema,
    engines: tuple[Engine, Engine],
    divergences: list[Divergence],
    options: ReconcileOptions,
) -> tuple[list[Divergence], int]:
    """Re-read divergent keys after the grace delay; (still divergent, resolved count)."""
    current: dict[Key, Divergence] = {d.key: d for d in divergences}
    confirmed: dict[Key, Divergence] = {}
    resolved = 0
    for attempt in range(options.max_rechecks):
        if not current:
            break
        time.sleep(options.grace_seconds)
        left, right = fetch_keys(pair, engines[0], engines[1], list(current))
        fresh = {d.key: d for d in compare_fetched(pair.mapping, left, right)}
        still: dict[Key, Divergence] = {}
        for key, seen in current.items():
            now = fresh.get(key)
            if now is None:
                resolved += 1
            elif now == seen or attempt == options.max_rechecks - 1:
                confirmed[key] = now
            else:
                still[key] = now
        current = still
    confirmed.update(current)
    return [confirmed[key] for key in sorted(confirmed)], resolved


def _mark_in_flight(
    pair: PairSchema, divergences: list[Divergence], pending: PendingChanges
) -> list[Divergence]:
    """In flight: a key's event is on its way. Stuck (dead-lettered, or waiting too long):
    divergent, with the reason, never in flight."""
    keys = [d.key for d in divergences]
    in_flight = pending.pending_keys(pair.mapping, keys)
    stuck = pending.stuck_keys(pair.mapping, keys)
    return [
        d.model_copy(update={"reason": stuck[d.key]})
        if d.key in stuck
        else d.model_copy(update={"in_flight": True})
        if d.key in in_flight
        else d
        for d in divergences
    ]


def prepare_pair(
    pair: PairSchema, urls: tuple[str, str], options: ReconcileOptions
) -> tuple[list[SegmentSpec], list[str]]:
    """The segments covering both tables' keys, and notes (statistics created)."""
    engines = (engine_for(urls[0]), engine_for(urls[1]))
    if pair.key_kind == "text":
        specs = text_key_segments(pair, urls, estimated_rows(pair, *engines), options)
        notes = []
        for role, engine in zip(("monolith", "service"), engines, strict=True):
            made = key_hash_statistics_sql(pair, role, specs[0].key_buckets)  # type: ignore[arg-type]
            if made and options.create_statistics:
                note = ensure_statistics(engine, pair, role, 0, options.statistics_min_rows, made)
                if note:
                    notes.append(note)
        return specs, notes
    bounds = key_bounds(pair, *engines)
    options = per_key_value(options, pair.rows_per_key)
    specs = plan_segments(pair, urls, bounds, options) if bounds else []
    notes = []
    if specs and specs[0].offset == 0 and options.create_statistics:
        for role, engine in zip(("monolith", "service"), engines, strict=True):
            note = ensure_statistics(
                engine, pair, role, options.levels[0], options.statistics_min_rows
            )
            if note:
                notes.append(note)
    return specs, notes


def finish_pair(
    pair: PairSchema,
    urls: tuple[str, str],
    results: Sequence[SegmentResult],
    *,
    options: ReconcileOptions,
    pending: PendingChanges,
) -> TableReport:
    """Re-check what the segments found, mark in-flight keys, total it up."""
    mapping = pair.mapping
    report = TableReport(
        name=mapping.name,
        monolith_table=mapping.monolith_table,
        service_table=mapping.service_table,
    )
    engines = (engine_for(urls[0]), engine_for(urls[1]))
    found = [d for result in results for d in result.divergences]
    settled, report.resolved_on_recheck = recheck(pair, engines, found, options)
    report.divergences = _mark_in_flight(pair, settled, pending)
    report.segments = len(results)
    report.monolith_rows = sum(r.monolith_rows for r in results)
    report.service_rows = sum(r.service_rows for r in results)
    report.checksummed_rows = report.monolith_rows + report.service_rows
    report.buckets = sum(r.buckets for r in results)
    report.mismatched_buckets = sum(r.mismatched_buckets for r in results)
    report.rows_fetched = sum(r.rows_fetched for r in results)
    report.keys_checked = max(report.monolith_rows, report.service_rows)
    report.coverage = 1.0
    report.tally()
    _hint(report)
    return report


def _hint(report: TableReport) -> None:
    report.hints = root_cause_hints(
        [d for d in report.divergences if not d.in_flight],
        report.monolith_rows,
        report.service_rows,
    )


def reconcile_pair(
    pair: PairSchema,
    urls: tuple[str, str],
    *,
    options: ReconcileOptions,
    executor: Executor,
    pending: PendingChanges,
    progress: ProgressCallback | None = None,
) -> TableReport:
    """Compare one checked pair end to end."""
    started = time.perf_counter()
    specs, notes = prepare_pair(pair, urls, options)
    state = Progress(table=pair.mapping.name, segments_total=len(specs))

    def on_done(result: SegmentResult) -> None:
        state.segments_done += 1
        state.rows_done += result.monolith_rows + result.service_rows
        if progress:
            progress(state)

    if progress:
        progress(state)
    results = executor.run(specs, on_done)
    report = finish_pair(pair, urls, results, options=options, pending=pending)
    report.notes = notes
    report.seconds = time.perf_counter() - started
    return report


def reconcile_changed(
    pair: PairSchema,
    urls: tuple[str, str],
    *,
    baseline: Baseline,
    upto: Mapping[str, int],
    options: ReconcileOptions,
    pending: PendingChanges,
) -> TableReport:
    """Compare only the keys with outbox events after the baseline's watermark, and the
    keys the table's last run left divergent (an incremental run)."""
    started = time.perf_counter()
    engines = (engine_for(urls[0]), engine_for(urls[1]))
    changed = changed_keys(pair, engines, since=baseline.watermark, upto=upto)
    keys = sorted({*changed, *(baseline.carried or ())})  # all int or all text
    report = finish_pair(
        pair, urls, [check_keys(pair, engines, keys)], options=options, pending=pending
    )
    report.kind = RunKind.INCREMENTAL
    report.segments = report.checksummed_rows = 0
    report.monolith_rows, report.service_rows = row_counts(pair, *engines)
    report.keys_checked = len(keys)
    rows = max(report.monolith_rows, report.service_rows)
    report.coverage = min(1.0, len(keys) / rows) if rows else 1.0
    report.watermark_from = dict(baseline.watermark)
    _hint(report)
    report.seconds = time.perf_counter() - started
    return report


def reconcile(
    mapping: ContextMapping,
    monolith_url: str,
    service_url: str,
    *,
    tables: Sequence[str] | None = None,
    options: ReconcileOptions | None = None,
    executor: Executor | None = None,
    pending: PendingChanges | None = None,
    progress: ProgressCallback | None = None,
    phase: str | None = None,
    incremental: bool = False,
    baselines: Mapping[str, Baseline] | None = None,
) -> Report:
    """Reconcile the selected pairs of ``mapping``; errors in the input raise before scanning.

    ``incremental`` checks only keys with outbox events since each table's last clean
    run (``baselines`` by table name; by default the control plane's, see
    :func:`reconciler.history.load_baselines`).
    """
    options = options or ReconcileOptions()
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    selected = select_tables(mapping, tables)
    for url in (monolith_url, service_url):
        require_database(url)
    monolith, service = engine_for(monolith_url), engine_for(service_url)
    sources = {table.name: table for table in mapping.tables}
    pairs = [
        inspect_pair(table, monolith, service, options.hash_mode, sources=sources)
        for table in selected
    ]
    executor = executor or LocalExecutor({pair.mapping.name: pair for pair in pairs})
    pending = pending or OutboxPending(monolith, service, stuck_after=options.stuck_after)
    report = Report(
        run_id=uuid.uuid4().hex,
        context=mapping.context,
        phase=phase,
        started_at=started_at,
        hash_mode=pairs[0].hash_mode if pairs else "",
        executor=executor.name,
    )
    if incremental and baselines is None:
        # lazy: the control-plane store is only needed for incremental runs
        from reconciler.history import load_baselines

        baselines = load_baselines(mapping.context)
    fallbacks: list[str] = []
    for pair in pairs:
        urls = (monolith_url, service_url)
        try:
            marks = outbox_marks((monolith, service))
            baseline = (baselines or {}).get(pair.mapping.name)
            why = why_full(baseline, marks) if incremental else None
            if baseline and incremental and why is None:
                table_report = reconcile_changed(
                    pair, urls, baseline=baseline, upto=marks, options=options, pending=pending
                )
            else:
                table_report = reconcile_pair(
                    pair,
                    urls,
                    options=options,
                    executor=executor,
                    pending=pending,
                    progress=progress,
                )
            if why:
                fallbacks.append(f"{pair.mapping.name}: {why}")
                table_report.notes.append(f"incremental run checked it in full: {why}")
            table_report.watermark_to = marks
        except ReconcileError as exc:
            table_report = TableReport(
                name=pair.mapping.name,
                monolith_table=pair.mapping.monolith_table,
                service_table=pair.mapping.service_table,
                error=str(exc),
            )
            table_report.tally()
        metrics.observe(mapping.context, table_report)
        report.tables.append(table_report)
    if any(table.kind is RunKind.INCREMENTAL for table in report.tables):
        report.kind = RunKind.INCREMENTAL
    report.fallback = "; ".join(fallbacks) or None
    report.finished_at = datetime.now(UTC)
    report.seconds = time.perf_counter() - started
    report.settle()
    return report
