"""Celery tasks and the executor that fans segments out to workers.

``reconciler.segment`` compares one key range (any worker, any machine);
``reconciler.reconcile_context`` is what beat schedules: it fans a context's segments
out as a chord whose callback (``reconciler.finish_run``) re-checks, reports and stores.

    report = reconcile(mapping, m_url, s_url, executor=CeleryExecutor(app, queue="reconciler"))
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from celery import Celery, chord, group, shared_task

from reconciler import metrics
from reconciler.config import resolve
from reconciler.connections import engine_for
from reconciler.history import record_run
from reconciler.incremental import outbox_marks
from reconciler.pending import OutboxPending
from reconciler.report import Report
from reconciler.runner import ReconcileOptions, finish_pair, prepare_pair
from reconciler.schema import inspect_pair
from reconciler.segment import SegmentResult, SegmentSpec, run_segment


@shared_task(name="reconciler.segment")
def segment_task(spec: dict[str, Any]) -> dict[str, Any]:
    """Compare one key range; the result travels back as JSON."""
    result = run_segment(SegmentSpec.model_validate(spec))
    result.worker = f"{socket.gethostname()}:{os.getpid()}"
    return result.model_dump(mode="json")


@shared_task(name="reconciler.reconcile_context")
def reconcile_context_task(context: str) -> dict[str, Any]:
    """What beat schedules: a context's segments fan out as a chord, the callback stores the run.

    The task itself never waits on its subtasks (a worker blocked on its own
    subtasks can deadlock a small pool); :func:`finish_run_task` collects them.
    """
    target = resolve(context)
    urls = (target.monolith_url, target.service_url)
    monolith, service = engine_for(urls[0]), engine_for(urls[1])
    tables = target.plan.mapping.tables
    sources = {table.name: table for table in tables}
    pairs = [inspect_pair(table, monolith, service, sources=sources) for table in tables]
    specs: list[SegmentSpec] = []
    notes: dict[str, list[str]] = {}
    for pair in pairs:
        pair_specs, notes[pair.mapping.name] = prepare_pair(pair, urls, ReconcileOptions())
        specs.extend(pair_specs)
    meta = {
        "run_id": uuid.uuid4().hex,
        "context": context,
        "phase": target.phase.value,
        "urls": list(urls),
        "started_at": datetime.now(UTC).isoformat(),
        "started": time.time(),
        "hash_mode": pairs[0].hash_mode if pairs else "",
        "notes": notes,
        "marks": outbox_marks((monolith, service)),
    }
    if not specs:
        return finish_run([], meta)
    header = [segment_task.s(spec.model_dump(mode="json")) for spec in specs]
    chord(header)(finish_run_task.s(meta))
    return {"run_id": meta["run_id"], "segments": len(specs)}


@shared_task(name="reconciler.finish_run")
def finish_run_task(results: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """Chord callback: re-check, build the report, store it."""
    return finish_run(results, meta)


def finish_run(results: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    urls = (meta["urls"][0], meta["urls"][1])
    monolith, service = engine_for(urls[0]), engine_for(urls[1])
    segments = [SegmentResult.model_validate(value) for value in results]
    report = Report(
        run_id=meta["run_id"],
        context=meta["context"],
        phase=meta["phase"],
        started_at=datetime.fromisoformat(meta["started_at"]),
        hash_mode=meta["hash_mode"],
        executor="celery",
    )
    pending = OutboxPending(monolith, service)
    tables = resolve(meta["context"]).plan.mapping.tables
    sources = {table.name: table for table in tables}
    for table in tables:
        pair = inspect_pair(table, monolith, service, sources=sources)
        mine = [segment for segment in segments if segment.table == table.name]
        table_report = finish_pair(pair, urls, mine, options=ReconcileOptions(), pending=pending)
        table_report.notes = meta["notes"].get(table.name, [])
        table_report.watermark_to = meta.get("marks", {})
        metrics.observe(report.context, table_report)
        report.tables.append(table_report)
    report.finished_at = datetime.now(UTC)
    report.seconds = time.time() - meta["started"]
    report.settle()
    record_run(report)
    return {"run_id": report.run_id, "verdict": report.verdict.value}


class CeleryExecutor:
    """Runs segments as a Celery group and waits for them, reporting each as it lands."""

    name = "celery"

    def __init__(
        self, app: Celery, *, queue: str | None = None, timeout: float = 3600.0, poll: float = 0.05
    ) -> None:
        self.app, self.queue, self.timeout, self.poll = app, queue, timeout, poll

    def run(
        self, specs: Sequence[SegmentSpec], on_done: Callable[[SegmentResult], None]
    ) -> list[SegmentResult]:
        if not specs:
            return []
        options = {"queue": self.queue} if self.queue else {}
        signatures = [
            self.app.signature(
                "reconciler.segment", args=(spec.model_dump(mode="json"),), **options
            )
            for spec in specs
        ]
        result = group(signatures).apply_async()
        deadline = time.monotonic() + self.timeout
        reported: set[int] = set()
        try:
            while len(reported) < len(specs):
                for index, child in enumerate(result.results):
                    if index not in reported and child.ready():
                        reported.add(index)
                        on_done(SegmentResult.model_validate(child.get(propagate=True)))
                if time.monotonic() > deadline:
                    raise TimeoutError(f"segments not done after {self.timeout:.0f}s")
                time.sleep(self.poll)
            return [SegmentResult.model_validate(value) for value in result.get()]
        finally:
            result.forget()
