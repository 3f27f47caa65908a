"""Errors the proxy makes itself, rendered as JSON ``{"code", "detail", "request_id"}``.

    ProxyError                      (status_code, code, default_detail, headers)
     ├── BadRequest                 400 bad_request     (TE + CL smuggling, malformed framing)
     ├── BadPath                    400 bad_path        (path refused by normalisation)
     ├── DisallowedHost             400 disallowed_host (Host not in allowed_hosts, host_header: client)
     ├── Unauthorized               401 unauthorized    (admin API without the bearer token)
     ├── InvalidToken               401 invalid_token   (``Authorization: Token`` the monolith refused)
     ├── NotFound                   404 not_found       (unknown admin endpoint)
     ├── UploadStalled              408 upload_stalled  (a streamed body stopped arriving upstream)
     ├── BodyTooLarge               413 body_too_large
     ├── PathTooLong                414 path_too_long
     ├── TooManyAttempts            429 too_many_attempts (failed admin sign-ins; Retry-After)
     ├── HeadersTooLarge            431 headers_too_large
     ├── UpstreamFailed             502 upstream_failed (connect refused, reset, bad response)
     ├── BreakerOpen                503 breaker_open    (circuit open, no fallback for the route)
     ├── AuthUnavailable            503 auth_unavailable (the whoami endpoint did not answer)
     ├── FenceOverflow              503 fence_overflow  (too many writes held by a fence; Retry-After)
     ├── UpstreamBusy               503 upstream_busy   (no pooled connection in time, or the route's
     │                                                   share of the pool in use; Retry-After)
     └── UpstreamTimeout            504 upstream_timeout

Route-table problems are not HTTP errors: they are
:class:`migration_plans.core.yamlfile.ConfigError` with one ``ConfigIssue`` per problem.
"""

from __future__ import annotations

import json


class ProxyError(Exception):
    """An error answered by the proxy itself; subclasses only set the class attributes."""

    status_code = 500
    code = "proxy_error"
    default_detail = "The proxy failed to handle the request."
    headers: tuple[tuple[bytes, bytes], ...] = ()
    """Extra response headers (lower-case names)."""

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.default_detail
        super().__init__(self.detail)

    def render(self, request_id: str) -> bytes:
        """The JSON body for this error."""
        body = {"code": self.code, "detail": self.detail, "request_id": request_id}
        return json.dumps(body, separators=(",", ":")).encode()


class BadRequest(ProxyError):
    status_code = 400
    code = "bad_request"
    default_detail = "Malformed request."


class BadPath(ProxyError):
    status_code = 400
    code = "bad_path"
    default_detail = "The request path is not acceptable."


class DisallowedHost(ProxyError):
    status_code = 400
    code = "disallowed_host"
    default_detail = "The Host header is not one of the route table's allowed_hosts."


class Unauthorized(ProxyError):
    status_code = 401
    code = "unauthorized"
    default_detail = "A valid admin bearer token is required."


class InvalidToken(ProxyError):
    status_code = 401
    code = "invalid_token"
    default_detail = "Invalid token."


class NotFound(ProxyError):
    status_code = 404
    code = "not_found"
    default_detail = "Not found."


class UploadStalled(ProxyError):
    """The client stopped sending a streamed body; the upstream connection was discarded."""

    status_code = 408
    code = "upload_stalled"
    default_detail = "The request body stopped arriving; the request was abandoned."


class BodyTooLarge(ProxyError):
    status_code = 413
    code = "body_too_large"
    default_detail = "The request body exceeds the proxy's limit."


class PathTooLong(ProxyError):
    status_code = 414
    code = "path_too_long"
    default_detail = "The request path exceeds the proxy's limit."


class TooManyAttempts(ProxyError):
    """Too many failed admin sign-ins or bearer tokens from one client address."""

    status_code = 429
    code = "too_many_attempts"
    default_detail = "Too many failed attempts from this address; retry later."

    def __init__(self, detail: str | None = None, *, retry_after: int = 60) -> None:
        super().__init__(detail)
        self.retry_after = max(1, retry_after)
        self.headers = ((b"retry-after", str(self.retry_after).encode()),)


class HeadersTooLarge(ProxyError):
    status_code = 431
    code = "headers_too_large"
    default_detail = "The request headers exceed the proxy's limit."


class UpstreamFailed(ProxyError):
    status_code = 502
    code = "upstream_failed"
    default_detail = "The upstream failed to answer."


class UpstreamConnectFailed(UpstreamFailed):
    """Nothing reached the upstream: a read may safely fall back to another upstream."""

    default_detail = "Could not connect to the upstream."


class BreakerOpen(ProxyError):
    status_code = 503
    code = "breaker_open"
    default_detail = "The upstream's circuit breaker is open."


class UpstreamBusy(ProxyError):
    """No pooled connection to the upstream in time, or the route holds its share of them."""

    status_code = 503
    code = "upstream_busy"
    default_detail = "The upstream is busy; retry shortly."
    headers = ((b"retry-after", b"1"),)


class AuthUnavailable(ProxyError):
    status_code = 503
    code = "auth_unavailable"
    default_detail = "The token could not be checked."


class FenceOverflow(ProxyError):
    status_code = 503
    code = "fence_overflow"
    default_detail = "Too many writes are waiting for a migration step; retry shortly."
    headers = ((b"retry-after", b"1"),)


class UpstreamTimeout(ProxyError):
    status_code = 504
    code = "upstream_timeout"
    default_detail = "The upstream did not answer in time."
