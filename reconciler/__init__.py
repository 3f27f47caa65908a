"""Parity checks between a context's monolith tables and its service tables, through the mapping.

    from reconciler import reconcile, ReconcileOptions
    report = reconcile(mapping_for("catalog"), monolith_url, service_url)
    report.verdict                       # clean | divergent | error
    reconcile(..., incremental=True)     # only keys with outbox events since the last clean run

Modules, in the order data flows through them: ``schema`` (check the pair),
``canonical``/``sql`` (render and hash rows), ``segment`` (checksums, narrowing, row
diffs), ``incremental`` (the outboxes' work list), ``runner`` (fan-out, re-check,
in-flight), ``diff``, ``report``/``render``, ``history`` (runs and audit in the control
plane), ``repair``, ``celery_app``/``tasks``.
Names are imported lazily so ``strangler --help`` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ReconcileError": "reconciler.exceptions",
    "ReconcileOptions": "reconciler.runner",
    "Report": "reconciler.report",
    "RunKind": "reconciler.report",
    "TableReport": "reconciler.report",
    "Verdict": "reconciler.report",
    "clean_streak": "reconciler.history",
    "last_runs_clean": "reconciler.history",
    "load_baselines": "reconciler.history",
    "load_watermarks": "reconciler.history",
    "reconcile": "reconciler.runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'reconciler' has no attribute {name!r}")
