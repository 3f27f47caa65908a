"""Remove secrets from exchanges and differences before they are stored, recorded or shown.

Credentials never leave the proxy in a mismatch sample, a stored difference, a flow
file or a generated test. The same rules everywhere (samples, differences, reports,
the dashboard):

- **headers**: ``Authorization``, ``Proxy-Authorization``, ``Cookie``, ``Set-Cookie``,
  the signed identity header, and any header whose name contains ``auth``, ``key``,
  ``token``, ``secret``, ``cookie`` (``X-Auth``, ``X-Access-Key``), ``session``,
  ``password`` or ``csrf``, case-insensitive;
- **query parameters and body fields** whose name says they hold a secret (token,
  password, secret, api key, session, cookie, credential, csrf, signature): in JSON
  bodies whatever their Content-Type (``text/plain`` holding JSON too), at any depth,
  and in form-encoded bodies (``password=...``, with or without a Content-Type).

    safe = redact_request(request)
    safe.header("authorization")   # "[REDACTED]"
    redact_value("root['user']['token']", "t0k")   # "[REDACTED]"
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from migration_plans.core.identity import IDENTITY_HEADER
from strangler_proxy.shadow.exchange import CapturedRequest, CapturedResponse, Headers

__all__ = [
    "REDACTED",
    "is_secret_header",
    "is_secret_name",
    "redact_json",
    "redact_request",
    "redact_response",
    "redact_value",
]

REDACTED = "[REDACTED]"
_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", IDENTITY_HEADER.lower()}
)
_SECRET_WORDS = re.compile(
    r"token|passw(or)?d|secret|api[-_]?key|session|credential|private[-_]?key|csrf|signature"
    r"|cookie|authori[sz]ation",
    re.IGNORECASE,
)
# Header names are a narrower vocabulary than field names ("author" is a field, never a
# header): any of these words anywhere in a header's name makes its value a secret.
_SECRET_HEADER_WORDS = re.compile(r"auth|key|token|secret|cookie|session|passw|csrf", re.I)
_FORM = re.compile(r"[^=&\s]+=[^&\s]*(?:&[^=&\s]+=[^&\s]*)*")
_PATH_KEY = re.compile(r"\[(?:'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\")\]")


def is_secret_name(name: str) -> bool:
    """Whether a header, parameter or field called ``name`` must not be kept."""
    return name.lower() in _SECRET_HEADERS or bool(_SECRET_WORDS.search(name))


def is_secret_header(name: str) -> bool:
    """Whether the header called ``name`` holds a credential (its value is never kept)."""
    return is_secret_name(name) or bool(_SECRET_HEADER_WORDS.search(name))


def _redact_headers(headers: Headers) -> Headers:
    return tuple((key, REDACTED if is_secret_header(key) else value) for key, value in headers)


def _redact_query(path: str) -> str:
    parts = urlsplit(path)
    if not parts.query:
        return path
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    cleaned = [(key, REDACTED if is_secret_name(key) else value) for key, value in pairs]
    return urlunsplit(parts._replace(query=urlencode(cleaned, safe="[]")))


def redact_json(value: Any) -> Any:
    """``value`` (a parsed JSON document) with every secret field's value replaced."""
    if isinstance(value, dict):
        return {
            key: REDACTED if is_secret_name(str(key)) else redact_json(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_json(item) for item in value]
    return value


def redact_value(path: str, value: Any) -> Any:
    """A value found at deepdiff ``path`` (``root['user']['token']``), safe to show: the
    whole value when a key on the path names a secret, else its secret fields."""
    for match in _PATH_KEY.finditer(path):
        if is_secret_name(match.group(1) or match.group(2) or ""):
            return REDACTED
    return redact_json(value)


def _text(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _redact_json_text(text: str) -> bytes | None:
    try:
        document = json.loads(text)
    except ValueError:
        return None
    redacted = redact_json(document)
    return text.encode() if redacted == document else json.dumps(redacted).encode()


def _redact_form(text: str) -> bytes | None:
    pairs = parse_qsl(text.strip(), keep_blank_values=True)
    if not any(is_secret_name(key) for key, _ in pairs):
        return None
    cleaned = [(key, REDACTED if is_secret_name(key) else value) for key, value in pairs]
    return urlencode(cleaned, safe="[]").encode()


def _redact_body(body: bytes, content_type: str | None) -> bytes:
    """JSON whatever the Content-Type says, form-encoded bodies with or without one."""
    text = _text(body) if body else None
    if text is None:
        return body
    kind = (content_type or "").lower()
    if "json" in kind or text.lstrip()[:1] in ("{", "["):
        redacted = _redact_json_text(text)
        if redacted is not None:
            return redacted
    if "x-www-form-urlencoded" in kind or _FORM.fullmatch(text.strip()):
        return _redact_form(text) or body
    return body


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
