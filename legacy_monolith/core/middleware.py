"""Request-id and metrics middleware (sync: the whole chain runs in one thread hop)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from legacy_monolith.core.logging import request_id_var
from legacy_monolith.core.metrics import LATENCY, REQUESTS

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_NAMED_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")


def route_template(request: HttpRequest) -> str:
    """The matched URL pattern as a low-cardinality label: ``api/v1/products/{pk}/``."""
    match = request.resolver_match
    if match is None:
        return "unmatched"
    return _NAMED_GROUP.sub(r"{\1}", str(match.route)).replace("^", "").replace("$", "")


access_log = logging.getLogger("legacy_monolith.access")


def incoming_request_id(request: HttpRequest) -> str:
    """The caller's X-Request-ID when it is sane, a new UUID otherwise."""
    candidate = request.headers.get(REQUEST_ID_HEADER, "")
    return candidate if _VALID_REQUEST_ID.match(candidate) else uuid.uuid4().hex


class RequestIdMiddleware:
    """Honour or generate ``X-Request-ID``; expose it to logs and return it on the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = incoming_request_id(request)
        request.request_id = request_id
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


class MetricsMiddleware:
    """Count requests and time them per route template; write the JSON access log line."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        route = route_template(request)
        REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        LATENCY.labels(request.method, route).observe(elapsed)
        if settings.ACCESS_LOG:
            access_log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round(elapsed * 1000, 3),
                },
            )
        return response
