"""Remove secrets from exchanges before they are stored, recorded or exported.

Credentials never leave the proxy in a mismatch sample, a flow file or a generated
test: ``Authorization``, ``Proxy-Authorization``, ``Cookie``, ``Set-Cookie``, the
signed identity header, and any header, query parameter or JSON body key whose
name says it holds a secret (token, password, secret, api key, session).

    safe = redact_request(request)
    safe.header("authorization")   # "[REDACTED]"
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from migration_plans.core.identity import IDENTITY_HEADER
from strangler_proxy.shadow.exchange import CapturedRequest, CapturedResponse, Headers

__all__ = ["REDACTED", "is_secret_name", "redact_request", "redact_response"]

REDACTED = "[REDACTED]"
_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", IDENTITY_HEADER.lower()}
)
_SECRET_WORDS = re.compile(
    r"token|passw(or)?d|secret|api[-_]?key|session|credential|private[-_]?key|csrf|signature",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    """Whether a header, parameter or field called ``name`` must not be kept."""
    return name.lower() in _SECRET_HEADERS or bool(_SECRET_WORDS.search(name))


def _redact_headers(headers: Headers) -> Headers:
    return tuple((key, REDACTED if is_secret_name(key) else value) for key, value in headers)


def _redact_query(path: str) -> str:
    parts = urlsplit(path)
    if not parts.query:
        return path
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    cleaned = [(key, REDACTED if is_secret_name(key) else value) for key, value in pairs]
    return urlunsplit(parts._replace(query=urlencode(cleaned, safe="[]")))


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: REDACTED if is_secret_name(str(key)) else _redact_json(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact_json(item) for item in value]
    return value


def _redact_body(body: bytes, content_type: str | None) -> bytes:
    if not body or "json" not in (content_type or "").lower():
        return body
    try:
        document = json.loads(body)
    except ValueError:
        return body
    redacted = _redact_json(document)
    return body if redacted == document else json.dumps(redacted).encode()


def redact_request(request: CapturedRequest) -> CapturedRequest:
    """The request without credentials in headers, query string or JSON body."""
    return CapturedRequest(
        method=request.method,
        path=_redact_query(request.path),
        headers=_redact_headers(request.headers),
        body=_redact_body(request.body, request.header("content-type")),
    )


def redact_response(response: CapturedResponse) -> CapturedResponse:
    """The response without cookies, credentials headers or secret JSON fields."""
    return CapturedResponse(
        status=response.status,
        headers=_redact_headers(response.headers),
        body=_redact_body(response.body, response.header("content-type")),
    )
