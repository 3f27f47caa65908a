"""The HTTP errors every service shares with the monolith (rendered by :mod:`.handlers`).

Every error body is ``{"code": "<snake_case>", "detail": "<message>"}``; validation
errors (code ``invalid``) add ``"fields": {"dotted.field": ["msg", ...]}``.

Exception tree::

    ApiError
    ├── ValidationFailed (400, ``invalid``)
    ├── ParseError (400, ``parse_error``)
    ├── DisallowedHost (400, ``disallowed_host``: Host not in the allowed hosts)
    ├── PaymentFailed (402, ``payment_failed``)
    ├── NotAuthenticated (401, ``not_authenticated``)
    │   └── AuthenticationFailed (401, ``authentication_failed``)
    ├── PermissionDenied (403, ``permission_denied``)
    │   └── ShadowWriteRefused (403, ``shadow_write_refused``: a mirrored copy of a write)
    ├── NotFound (404, ``not_found``)
    ├── MethodNotAllowed (405, ``method_not_allowed``)
    ├── UnsupportedMediaType (415, ``unsupported_media_type``)
    ├── Unavailable (503, ``unavailable``)
    └── Conflict (409, ``conflict``)
        ├── PhaseReadOnly (409, ``phase_read_only``)
        ├── InUse (409, ``in_use``: delete of a referenced row)
        ├── InsufficientStock (409, ``insufficient_stock``)
        ├── ReservationExists (409, ``reservation_exists``: an order reserved other lines)
        └── InvalidState (409, ``invalid_state``)
"""

from __future__ import annotations

from typing import Any

VALIDATION_DETAIL = "Invalid input."


class ApiError(Exception):
    """An error with a status code, a stable code and a message for humans."""

    status_code = 500
    code = "server_error"
    default_detail = "A server error occurred."

    def __init__(self, detail: str | None = None, *, fields: dict[str, list[str]] | None = None):
        self.detail = detail or self.default_detail
        self.fields = fields
        super().__init__(self.detail)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "detail": self.detail}
        if self.fields is not None:
            body["fields"] = self.fields
        return body


class ValidationFailed(ApiError):
    status_code = 400
    code = "invalid"
    default_detail = VALIDATION_DETAIL

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__(VALIDATION_DETAIL, fields=fields)


class ParseError(ApiError):
    status_code = 400
    code = "parse_error"
    default_detail = "Malformed request."


class DisallowedHost(ApiError):
    status_code = 400
    code = "disallowed_host"
    default_detail = "The Host header is not one of the service's allowed hosts."


class PaymentFailed(ApiError):
    status_code = 402
    code = "payment_failed"
    default_detail = "The payment was declined."


class NotAuthenticated(ApiError):
    status_code = 401
    code = "not_authenticated"
    default_detail = "Authentication credentials were not provided."


class AuthenticationFailed(NotAuthenticated):
    code = "authentication_failed"
    default_detail = "Incorrect authentication credentials."


class PermissionDenied(ApiError):
    status_code = 403
    code = "permission_denied"
    default_detail = "You do not have permission to perform this action."


class ShadowWriteRefused(PermissionDenied):
    code = "shadow_write_refused"
    default_detail = "Shadow copies of writes are refused by this service."


class NotFound(ApiError):
    status_code = 404
    code = "not_found"
    default_detail = "Not found."


class MethodNotAllowed(ApiError):
    status_code = 405
    code = "method_not_allowed"
    default_detail = "Method not allowed."


class UnsupportedMediaType(ApiError):
    status_code = 415
    code = "unsupported_media_type"
    default_detail = "Unsupported media type in request."


class Unavailable(ApiError):
    status_code = 503
    code = "unavailable"
    default_detail = "The service cannot reach its database."


class Conflict(ApiError):
    status_code = 409
    code = "conflict"
    default_detail = "The request conflicts with the current state."


class PhaseReadOnly(Conflict):
    code = "phase_read_only"
    default_detail = "This context is read-only in the current phase."


class InUse(Conflict):
    code = "in_use"
    default_detail = "The resource is referenced by other records and cannot be deleted."


class InsufficientStock(Conflict):
    code = "insufficient_stock"
    default_detail = "Not enough stock available."


class ReservationExists(Conflict):
    code = "reservation_exists"
    default_detail = "The order already has different reservations."


class InvalidState(Conflict):
    code = "invalid_state"
    default_detail = "The operation is not allowed in the current state."
