"""Carry the request's ``X-Request-ID`` into events the capture triggers write (PostgreSQL).

Place after ``legacy_monolith.core.middleware.RequestIdMiddleware``. For unsafe methods
it sets the session setting ``strangler.request_id`` that the trigger reads, and
clears it when the response is done.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import connection
from django.http import HttpRequest, HttpResponse

from migration_plans.core.http import SAFE_METHODS


class CaptureRequestIdMiddleware:
    """Sets ``strangler.request_id`` on the connection while an unsafe request runs."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = getattr(request, "request_id", None) or request.headers.get("X-Request-ID")
        if request.method in SAFE_METHODS or not request_id or connection.vendor != "postgresql":
            return self.get_response(request)
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('strangler.request_id', %s, false)", [request_id])
        try:
            return self.get_response(request)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('strangler.request_id', '', false)")
