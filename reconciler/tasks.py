"""Celery tasks and the executor that fans segments out to workers.

``reconciler.segment`` compares one key range (any worker, any machine);
``reconciler.reconcile_context`` is what beat schedules: a whole run, stored in history.

    report = reconcile(mapping, m_url, s_url, executor=CeleryExecutor(app, queue="reconciler"))
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from celery import Celery, group, shared_task

from reconciler.segment import SegmentResult, SegmentSpec, run_segment


@shared_task(name="reconciler.segment")
def segment_task(spec: dict[str, Any]) -> dict[str, Any]:
    """Compare one key range; the result travels back as JSON."""
    result = run_segment(SegmentSpec.model_validate(spec))
    result.worker = f"{socket.gethostname()}:{os.getpid()}"
    return result.model_dump(mode="json")


@shared_task(name="reconciler.reconcile_context")
def reconcile_context_task(context: str) -> dict[str, Any]:
    """Reconcile a whole context in this worker and store the run (scheduled by beat)."""
    from reconciler.config import resolve
    from reconciler.history import record_run
    from reconciler.runner import reconcile

    target = resolve(context)
    report = reconcile(
        target.plan.mapping,
        target.monolith_url,
        target.service_url,
        phase=target.plan.phase.value,
    )
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
