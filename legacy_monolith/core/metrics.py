"""Prometheus metrics of the monolith (prometheus_client, per process)."""

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "monolith_http_requests_total",
    "HTTP requests handled by the monolith.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "monolith_http_request_duration_seconds",
    "Time spent handling HTTP requests.",
    ["method", "route"],
)
ORDERS = Counter("monolith_orders_total", "Order placement attempts by outcome.", ["outcome"])
