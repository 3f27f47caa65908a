"""The monolith's error format, rendered in one place.

Every error body is ``{"code": "<snake_case>", "detail": "<human message>"}``;
validation errors (code ``invalid``) add ``"fields": {"field": ["msg", ...]}`` where
nested fields are dotted (``lines.0.quantity``), a nested object's or list's own
errors sit under its name (``lines``) and top-level object errors under
``non_field_errors``.

Exception tree (domain conflicts raised by services)::

    rest_framework.exceptions.APIException
    ├── Conflict (409, code ``conflict``)
    │   ├── InsufficientStock (409, ``insufficient_stock``)
    │   ├── ReservationExists (409, ``reservation_exists``: an order reserved other lines)
    │   ├── InUse (409, ``in_use``: delete of a referenced row)
    │   └── InvalidState (409, ``invalid_state``)
    ├── PaymentFailed (402, ``payment_failed``)
    └── ServiceUnavailable (503, ``service_unavailable``: a saga gave up on a service)
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import IntegrityError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class Conflict(exceptions.APIException):
    """The request conflicts with the current state of a resource."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class InsufficientStock(Conflict):
    """Not enough available stock to reserve."""

    default_detail = "Not enough stock available."
    default_code = "insufficient_stock"


class ReservationExists(Conflict):
    """The order already holds reservations for other lines than the ones requested."""

    default_detail = "The order already has different reservations."
    default_code = "reservation_exists"


class InvalidState(Conflict):
    """The resource is not in a state that allows the operation."""

    default_detail = "The operation is not allowed in the current state."
    default_code = "invalid_state"


class InUse(Conflict):
    """The resource is still referenced by other records and cannot be deleted."""

    default_detail = "The resource is referenced by other records and cannot be deleted."
    default_code = "in_use"


class ServiceUnavailable(exceptions.APIException):
    """A service the request needed did not answer in time; what it started was undone."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A service this request needs is unavailable."
    default_code = "service_unavailable"


class PaymentFailed(exceptions.APIException):
    """The payment provider declined the charge."""

    status_code = status.HTTP_402_PAYMENT_REQUIRED
    default_detail = "The payment was declined."
    default_code = "payment_failed"


VALIDATION_DETAIL = "Invalid input."
COMPACT = {"separators": (",", ":")}
NON_FIELD_ERRORS = "non_field_errors"


def flatten_errors(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn DRF's nested error structure into ``{"dotted.field": ["msg", ...]}``."""
    if isinstance(errors, dict):
        flat: dict[str, list[str]] = {}
        for key, value in errors.items():
            if prefix and key == NON_FIELD_ERRORS:  # a nested serializer's own errors
                flat.update(flatten_errors(value, prefix))
            else:
                flat.update(flatten_errors(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(errors, list) and any(isinstance(item, dict | list) for item in errors):
        flat = {}
        for index, value in enumerate(errors):
            flat.update(flatten_errors(value, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    messages = errors if isinstance(errors, list) else [errors]
    return {prefix or NON_FIELD_ERRORS: [str(message) for message in messages]}


def error_body(exc: exceptions.APIException) -> dict[str, Any]:
    """The JSON body for an API exception."""
    if isinstance(exc, exceptions.ValidationError):
        return {
            "code": "invalid",
            "detail": VALIDATION_DETAIL,
            "fields": flatten_errors(exc.detail),
        }
    detail = exc.detail
    if isinstance(detail, list | dict):
        return {"code": "invalid", "detail": VALIDATION_DETAIL, "fields": flatten_errors(detail)}
    return {"code": str(getattr(detail, "code", None) or exc.default_code), "detail": str(detail)}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler with the monolith's body format (REST_FRAMEWORK['EXCEPTION_HANDLER'])."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, ProtectedError | RestrictedError):
        exc = InUse()
    elif isinstance(exc, IntegrityError):
        exc = Conflict("The change conflicts with existing data.")
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    response.data = error_body(exc)
    return response


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """handler404: unknown URLs answer in the API's error format."""
    return JsonResponse(
        {"code": "not_found", "detail": "Not found."}, status=404, json_dumps_params=COMPACT
    )


def server_error(request: HttpRequest) -> JsonResponse:
    """handler500: unexpected errors answer in the API's error format."""
    return JsonResponse(
        {"code": "server_error", "detail": "A server error occurred."},
        status=500,
        json_dumps_params=COMPACT,
    )
