"""Prometheus metrics of the relay (served by ``strangler dualwrite relay --metrics-port``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "strangler_dualwrite_events_total",
    "Outbox events handled by the relay, by outcome.",
    ["context", "direction", "outcome"],
)
FAILURES = Counter(
    "strangler_dualwrite_failures_total",
    "Failed attempts to apply an event (kind: unavailable or apply).",
    ["context", "direction", "kind"],
)
LAG = Histogram(
    "strangler_dualwrite_relay_lag_seconds",
    "From the event's commit-time timestamp to its application on the other side.",
    ["context", "direction"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
PENDING = Gauge(
    "strangler_dualwrite_pending_events",
    "Events waiting in an outbox (pending or in flight).",
    ["context", "side"],
)
DEAD_LETTERS = Gauge(
    "strangler_dualwrite_dead_letters",
    "Events in the dead-letter table.",
    ["context", "side"],
)
BACKFILL_ROWS = Counter(
    "strangler_dualwrite_backfill_rows_total",
    "Rows copied by the backfill.",
    ["context", "table"],
)
