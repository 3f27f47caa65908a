"""Bounds of the reconciler's options, shared by the CLI (which must import nothing heavy)
and :class:`reconciler.runner.ReconcileOptions`."""

from __future__ import annotations

MAX_PARALLEL_WORKERS = 64
"""Most PostgreSQL parallel workers a side's scans may add (``--parallel-workers``)."""
