"""Run history and repair audit in the control-plane database.

Every reconcile run is stored with its verdict, per table, so the CLI can list them
and the migration gates can ask whether the last K runs were clean. Every row a
repair changes gets an audit record. A stored run that is clean for a table moves
that table's watermark (the outbox ids per side at the run's start) forward: incremental
runs start from it. Tables are created idempotently on first use.

    record_run(report)
    last_runs_clean("catalog", 3)              # -> True / False
    clean_streak("catalog", table="products")  # consecutive clean runs, newest first
    load_watermarks("catalog")                 # {"products": {"monolith": 812, "service": 77}}
    load_baselines("catalog")                  # where incremental runs start, per table
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from migration_plans.core.control_db import control_db_url, control_engine
from reconciler.diff import Key
from reconciler.incremental import Baseline
from reconciler.report import Report, Verdict

metadata = sa.MetaData()

runs = sa.Table(
    "reconciler_runs",
    metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("context", sa.String(64), nullable=False, index=True),
    sa.Column("phase", sa.String(16), nullable=True),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("executor", sa.String(16), nullable=False),
    sa.Column("report", sa.Text, nullable=False),
)

run_tables = sa.Table(
    "reconciler_run_tables",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("reconciler_runs.run_id"), primary_key=True),
    sa.Column("table_name", sa.String(64), primary_key=True),
    sa.Column("context", sa.String(64), nullable=False),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("monolith_rows", sa.BigInteger, nullable=False),
    sa.Column("service_rows", sa.BigInteger, nullable=False),
    sa.Column("missing_in_service", sa.BigInteger, nullable=False),
    sa.Column("missing_in_monolith", sa.BigInteger, nullable=False),
    sa.Column("differing", sa.BigInteger, nullable=False),
    sa.Column("in_flight", sa.BigInteger, nullable=False),
    sa.Index("ix_reconciler_run_tables_ctx", "context", "table_name", "finished_at"),
)

repairs = sa.Table(
    "reconciler_repairs",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("run_id", sa.String(32), nullable=False, index=True),
    sa.Column("context", sa.String(64), nullable=False),
    sa.Column("table_name", sa.String(64), nullable=False),
    sa.Column("row_key", sa.String(64), nullable=False),
    sa.Column("action", sa.String(8), nullable=False),
    sa.Column("direction", sa.String(32), nullable=False),
    sa.Column("before", sa.Text, nullable=True),
    sa.Column("after", sa.Text, nullable=True),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)

watermarks = sa.Table(
    "reconciler_watermarks",
    metadata,
    sa.Column("context", sa.String(64), primary_key=True),
    sa.Column("table_name", sa.String(64), primary_key=True),
    sa.Column("side", sa.String(16), primary_key=True),
    sa.Column("outbox_id", sa.BigInteger, nullable=False),
    sa.Column("run_id", sa.String(32), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
)
"""Per table and side: the highest outbox id at the start of the last clean run."""

_READY: set[str] = set()


def store(url: str | None = None) -> Engine:
    """The control-plane engine with the reconciler's tables in place."""
    engine = control_engine(url or control_db_url())
    marker = str(engine.url)
    if marker not in _READY:
        metadata.create_all(engine)
        _READY.add(marker)
    return engine


def record_run(report: Report, *, limit: int = 100, url: str | None = None) -> None:
    """Store a finished run (listing at most ``limit`` keys per table in the stored report)."""
    finished = report.finished_at or datetime.now(UTC)
    with store(url).begin() as conn:
        conn.execute(
            runs.insert().values(
                run_id=report.run_id,
                context=report.context,
                phase=report.phase,
                verdict=report.verdict.value,
                started_at=report.started_at,
                finished_at=finished,
                seconds=report.seconds,
                executor=report.executor,
                report=report.limited(limit).model_dump_json(),
            )
        )
        for table in report.tables:
            conn.execute(
                run_tables.insert().values(
                    run_id=report.run_id,
                    table_name=table.name,
                    context=report.context,
                    verdict=table.verdict.value,
                    finished_at=finished,
                    monolith_rows=table.monolith_rows,
                    service_rows=table.service_rows,
                    missing_in_service=table.missing_in_service,
                    missing_in_monolith=table.missing_in_monolith,
                    differing=table.differing,
                    in_flight=table.in_flight,
                )
            )
        _advance_watermarks(conn, report)


def _advance_watermarks(conn: sa.Connection, report: Report) -> None:
    """Clean tables' ``watermark_to`` becomes their watermark (moving back is safe: more keys)."""
    for table in report.tables:
        if table.verdict != Verdict.CLEAN or not table.watermark_to:
            continue
        for side, outbox_id in table.watermark_to.items():
            where = sa.and_(
                watermarks.c.context == report.context,
                watermarks.c.table_name == table.name,
                watermarks.c.side == side,
            )
            conn.execute(watermarks.delete().where(where))
            conn.execute(
                watermarks.insert().values(
                    context=report.context,
                    table_name=table.name,
                    side=side,
                    outbox_id=outbox_id,
                    run_id=report.run_id,
                    started_at=report.started_at,
                )
            )


def load_watermarks(context: str, url: str | None = None) -> dict[str, dict[str, int]]:
    """Each table's watermark: {table: {side: outbox id}} (tables never clean are absent)."""
    query = sa.select(watermarks).where(watermarks.c.context == context)
    found: dict[str, dict[str, int]] = {}
    with store(url).connect() as conn:
        for row in conn.execute(query):
            found.setdefault(row.table_name, {})[row.side] = int(row.outbox_id)
    return found


def _left_divergent(context: str, table: str, url: str | None) -> tuple[Key, ...] | None:
    """Keys the newest stored run of ``table`` left divergent; None when not all are known
    (it listed fewer than it found, or could not compare the table)."""
    query = (
        sa.select(run_tables.c.run_id)
        .where(run_tables.c.context == context, run_tables.c.table_name == table)
        .order_by(run_tables.c.finished_at.desc())
        .limit(1)
    )
    with store(url).connect() as conn:
        run_id = conn.execute(query).scalar()
    report = load_report(run_id, url) if run_id else None
    found = [t for t in report.tables if t.name == table] if report else []
    if not found:
        return ()
    last = found[0]
    if last.verdict == Verdict.ERROR or len(last.divergences) < last.divergent + last.in_flight:
        return None
    return tuple(d.key for d in last.divergences)


def load_baselines(context: str, url: str | None = None) -> dict[str, Baseline]:
    """Where each table's incremental run starts (tables never clean are absent)."""
    return {
        table: Baseline(watermark=marks, carried=_left_divergent(context, table, url))
        for table, marks in load_watermarks(context, url).items()
    }


@dataclass(frozen=True)
class RunSummary:
    """One stored run, as listed by ``strangler reconcile history``."""

    run_id: str
    context: str
    phase: str | None
    verdict: str
    started_at: datetime
    seconds: float
    executor: str
    divergent: int
    tables: int


def recent_runs(
    context: str | None = None, *, limit: int = 20, url: str | None = None
) -> list[RunSummary]:
    """Newest runs first."""
    divergent = sa.func.coalesce(
        sa.func.sum(
            run_tables.c.missing_in_service
            + run_tables.c.missing_in_monolith
            + run_tables.c.differing
        ),
        0,
    )
    query = (
        sa.select(runs, divergent.label("divergent"), sa.func.count(run_tables.c.table_name))
        .select_from(runs.outerjoin(run_tables))
        .group_by(*runs.c)
        .order_by(runs.c.started_at.desc())
        .limit(limit)
    )
    if context:
        query = query.where(runs.c.context == context)
    with store(url).connect() as conn:
        rows = conn.execute(query).all()
    return [
        RunSummary(
            run_id=row.run_id,
            context=row.context,
            phase=row.phase,
            verdict=row.verdict,
            started_at=row.started_at,
            seconds=row.seconds,
            executor=row.executor,
            divergent=int(row.divergent),
            tables=int(row[-1]),
        )
        for row in rows
    ]


def load_report(run_id: str, url: str | None = None) -> Report | None:
    """The stored report of ``run_id`` (keys listed up to the limit it was stored with)."""
    with store(url).connect() as conn:
        text = conn.execute(sa.select(runs.c.report).where(runs.c.run_id == run_id)).scalar()
    return Report.model_validate_json(text) if text else None


def _verdicts(context: str, table: str | None, limit: int, url: str | None) -> list[str]:
    if table is None:
        query = sa.select(runs.c.verdict).where(runs.c.context == context)
        query = query.order_by(runs.c.started_at.desc())
    else:
        query = sa.select(run_tables.c.verdict).where(
            run_tables.c.context == context, run_tables.c.table_name == table
        )
        query = query.order_by(run_tables.c.finished_at.desc())
    with store(url).connect() as conn:
        return list(conn.execute(query.limit(limit)).scalars())


def last_runs_clean(
    context: str, k: int, *, table: str | None = None, url: str | None = None
) -> bool:
    """True when there are at least ``k`` runs and the newest ``k`` were all clean."""
    verdicts = _verdicts(context, table, k, url)
    return len(verdicts) >= k and all(v == Verdict.CLEAN for v in verdicts)


def clean_streak(
    context: str, *, table: str | None = None, limit: int = 1000, url: str | None = None
) -> int:
    """How many of the newest runs in a row were clean (the ``reconcile_clean_runs`` metric)."""
    streak = 0
    for verdict in _verdicts(context, table, limit, url):
        if verdict != Verdict.CLEAN:
            break
        streak += 1
    return streak


def _json(row: dict[str, Any] | None) -> str | None:
    return None if row is None else json.dumps(row, default=str, sort_keys=True)


@dataclass(frozen=True)
class AuditRecord:
    """One row a repair changed."""

    run_id: str
    context: str
    table: str
    key: int | str
    action: str
    direction: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def record_repairs(records: Sequence[AuditRecord], url: str | None = None) -> None:
    """Append audit records (one per changed row)."""
    if not records:
        return
    now = datetime.now(UTC)
    with store(url).begin() as conn:
        conn.execute(
            repairs.insert(),
            [
                {
                    "run_id": r.run_id,
                    "context": r.context,
                    "table_name": r.table,
                    "row_key": str(r.key),
                    "action": r.action,
                    "direction": r.direction,
                    "before": _json(r.before),
                    "after": _json(r.after),
                    "applied_at": now,
                }
                for r in records
            ],
        )


def repairs_of(run_id: str, url: str | None = None) -> list[dict[str, Any]]:
    """Audit records of one run, oldest first."""
    query = sa.select(repairs).where(repairs.c.run_id == run_id).order_by(repairs.c.id)
    with store(url).connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]
