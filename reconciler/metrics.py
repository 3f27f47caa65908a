"""Prometheus gauges the reconciler keeps current (scraped from the worker or the CLI host).

strangler_reconcile_divergent_rows{context="catalog", table="products"} 3
"""

from __future__ import annotations

import time

from prometheus_client import Gauge

from reconciler.report import TableReport

DIVERGENT_ROWS = Gauge(
    "strangler_reconcile_divergent_rows",
    "Rows that differ between monolith and service at the last reconcile (in-flight excluded).",
    ["context", "table"],
)
IN_FLIGHT_ROWS = Gauge(
    "strangler_reconcile_in_flight_rows",
    "Divergent rows with a dual-write event still pending at the last reconcile.",
    ["context", "table"],
)
LAST_RUN = Gauge(
    "strangler_reconcile_last_run_timestamp_seconds",
    "When the table was last reconciled (Unix time).",
    ["context", "table"],
)


def observe(context: str, table: TableReport) -> None:
    """Publish one table's outcome."""
    DIVERGENT_ROWS.labels(context, table.name).set(table.divergent)
    IN_FLIGHT_ROWS.labels(context, table.name).set(table.in_flight)
    LAST_RUN.labels(context, table.name).set(time.time())
