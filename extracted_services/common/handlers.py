"""The one place service errors become responses: ``{"code", "detail"[, "fields"]}``.

:class:`~extracted_services.common.errors.ApiError` renders as itself; Starlette's HTTP
errors, FastAPI's request validation errors, integrity errors and anything unexpected
are translated here, the way the monolith renders them.

    install_error_handlers(app)
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from extracted_services.common.errors import (
    ApiError,
    Conflict,
    MethodNotAllowed,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    UnsupportedMediaType,
    ValidationFailed,
)
from extracted_services.common.validation import drf_fields

__all__ = ["install_error_handlers", "render"]

log = logging.getLogger("extracted_services.errors")

_STATUS_ERRORS: dict[int, type[ApiError]] = {
    401: NotAuthenticated,
    403: PermissionDenied,
    404: NotFound,
    405: MethodNotAllowed,
    415: UnsupportedMediaType,
}


def render(error: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON response for ``error``."""
    return JSONResponse(error.body(), status_code=error.status_code, headers=headers)


CHALLENGE = {"WWW-Authenticate": "Token"}
"""What the monolith's TokenAuthentication says on a 401: how to authenticate."""


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return render(exc, headers=CHALLENGE if exc.status_code == 401 else None)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        error: ApiError = MethodNotAllowed(f'Method "{request.method}" not allowed.')
    else:
        error = _STATUS_ERRORS.get(exc.status_code, ApiError)()
        error.status_code = exc.status_code
    return render(error, headers=dict(exc.headers or {}))


async def _request_invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return render(ValidationFailed(drf_fields(exc.errors(), skip_prefix=1)))


async def _integrity(request: Request, exc: Exception) -> JSONResponse:
    log.warning("integrity error", exc_info=exc)
    return render(Conflict("The change conflicts with existing data."))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return render(ApiError())


def install_error_handlers(app: FastAPI) -> None:
    """Render every error the way the monolith does."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(IntegrityError, _integrity)
    app.add_exception_handler(Exception, _unexpected)
