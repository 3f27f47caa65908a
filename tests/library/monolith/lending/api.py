"""The API's conventions: pagination envelope and the error body ``{"code", "detail", "fields"}``."""

from __future__ import annotations

from typing import Any

from django.db.models import ProtectedError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, pagination, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class Pagination(pagination.PageNumberPagination):
    """``{"count", "next", "previous", "results"}``; ``?page=`` and ``?page_size=`` (max 100)."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


class InUse(exceptions.APIException):
    """A delete of a row other rows still reference."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The resource is referenced by other records and cannot be deleted."
    default_code = "in_use"


def _fields(errors: Any) -> dict[str, list[str]]:
    if isinstance(errors, dict):
        return {str(key): [str(message) for message in value] for key, value in errors.items()}
    return {"non_field_errors": [str(message) for message in errors]}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler with the body every endpoint answers errors in."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, ProtectedError):
        exc = InUse()
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    if isinstance(exc, exceptions.ValidationError):
        response.data = {
            "code": "invalid",
            "detail": "Invalid input.",
            "fields": _fields(exc.detail),
        }
    else:
        code = getattr(exc.detail, "code", None) or exc.default_code
        response.data = {"code": str(code), "detail": str(exc.detail)}
    return response


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """handler404: unknown URLs answer in the API's error format."""
    return JsonResponse({"code": "not_found", "detail": "Not found."}, status=404)
