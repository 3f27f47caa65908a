"""Operational endpoints: ``/healthz`` and ``/metrics``."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: 200 ``{"status": "ok"}`` while the process serves requests."""
    return JsonResponse(
        {"status": "ok", "service": "legacy_monolith"}, json_dumps_params={"separators": (",", ":")}
    )


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text exposition of this process's metrics."""
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
