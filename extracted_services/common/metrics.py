"""Prometheus metrics of every service (labelled by service) and the access log line."""

from __future__ import annotations

import logging
import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from migration_plans.core.logs import request_id_var

REQUESTS = Counter(
    "strangler_service_http_requests_total",
    "HTTP requests handled by an extracted service.",
    ["service", "method", "route", "status"],
)
LATENCY = Histogram(
    "strangler_service_http_request_duration_seconds",
    "Time an extracted service spent handling HTTP requests.",
    ["service", "method", "route"],
)
OUTBOX_EVENTS = Counter(
    "strangler_service_outbox_events_total",
    "Change events a service's write path recorded.",
    ["service", "table", "operation"],
)
PHASE = Gauge(
    "strangler_service_phase",
    "1 for the data phase a service process runs in.",
    ["service", "phase"],
)
access_log = logging.getLogger("extracted_services.access")


def _route(scope: Scope) -> str:
    route = scope.get("route")
    return str(getattr(route, "path", "unmatched"))


class MetricsMiddleware:
    """Counts and times requests per route template; writes one JSON access log line each."""

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            elapsed = time.perf_counter() - started
            route = _route(scope)
            REQUESTS.labels(self.service, scope["method"], route, str(status)).inc()
            LATENCY.labels(self.service, scope["method"], route).observe(elapsed)
            access_log.info(
                "request",
                extra={
                    "service": self.service,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "request_id": request_id_var.get(),
                },
            )


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text exposition of this process's metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
