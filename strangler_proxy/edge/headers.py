"""Header rewriting at the edge, both directions.

Towards the upstream: hop-by-hop headers (Connection and every header it names,
Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*) go; so do the client's
``X-Strangler-*``, ``X-Forwarded-*``, ``Forwarded`` and ``X-Real-IP`` (never trusted),
and every header whose name has an underscore: WSGI servers (Django) turn ``-`` and
``_`` into the same ``HTTP_*`` key, so ``X_Forwarded_For`` would merge with the real
one behind the proxy (nginx drops them too). The proxy then sets
X-Forwarded-For/-Proto/-Host from its own connection data, the request id, the Host
the upstream expects and, when it authenticated the client, the signed identity
header. :func:`check_singletons` refuses two Host or two Authorization headers, and
an HTTP/1.1 request without Host. Back to the client: hop-by-hop headers go, the
request id is added.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable

from migration_plans.core import http
from strangler_proxy.edge.errors import BadRequest, HeadersTooLarge

HOP_BY_HOP = frozenset(name.encode("ascii") for name in http.HOP_BY_HOP)
""":data:`migration_plans.core.http.HOP_BY_HOP` as the byte strings of ASGI headers."""
_UNTRUSTED = frozenset({b"forwarded", b"x-real-ip", b"x-request-id", b"host", b"expect"})
_UNTRUSTED_PREFIXES = (b"x-strangler-", b"x-forwarded-", b"proxy-")
_SET_BY_CLIENT_LIBRARY = frozenset({b"content-length"})
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")

RawHeaders = Iterable[tuple[bytes, bytes]]


def request_id_from(headers: dict[bytes, bytes]) -> str:
    """The client's ``X-Request-ID`` when well-formed, else a new one."""
    value = headers.get(b"x-request-id")
    if value is not None and _REQUEST_ID.fullmatch(value):
        return value.decode("ascii")
    # Not a secret, only unique: the per-process generator (reseeded at fork) spares a
    # getrandom system call per request.
    return f"{random.getrandbits(128):032x}"


def connection_tokens(value: bytes) -> frozenset[bytes]:
    """Header names a ``Connection`` header value declares hop-by-hop."""
    return frozenset(token.strip().lower() for token in value.split(b","))


def check_singletons(raw: list[tuple[bytes, bytes]], http_version: str) -> None:
    """Refuse (:class:`BadRequest`) two Host or two Authorization headers, and an
    HTTP/1.1 request without Host (RFC 9112 section 3.2): one meaning per header."""
    hosts = authorizations = 0
    for name, _ in raw:
        if name == b"host":
            hosts += 1
        elif name == b"authorization":
            authorizations += 1
    if hosts > 1:
        raise BadRequest(f"exactly one Host header is allowed, got {hosts}")
    if not hosts and http_version == "1.1":
        raise BadRequest("an HTTP/1.1 request needs a Host header")
    if authorizations > 1:
        raise BadRequest(f"at most one Authorization header is allowed, got {authorizations}")


def _drop(name: bytes) -> bool:
    return (
        b"_" in name
        or name in HOP_BY_HOP
        or name in _UNTRUSTED
        or name in _SET_BY_CLIENT_LIBRARY
        or name.startswith(_UNTRUSTED_PREFIXES)
    )


def upstream_headers(
    raw: list[tuple[bytes, bytes]],
    *,
    client_host: str,
    scheme: str,
    host: str,
    client_host_header: str,
    request_id: str,
    extra: Iterable[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """Headers to send upstream for a request whose (lower-case) ASGI headers are ``raw``."""
    named: frozenset[bytes] = frozenset()
    out: list[tuple[str, str]] = []
    for name, value in raw:
        if name == b"connection":
            named |= connection_tokens(value)
        elif not _drop(name):
            out.append((name.decode("latin-1"), value.decode("latin-1")))
    if named:
        out = [(name, value) for name, value in out if name.encode("latin-1") not in named]
    out.append(("Host", host))
    out.append(("X-Forwarded-For", client_host))
    out.append(("X-Forwarded-Proto", scheme))
    out.append(("X-Forwarded-Host", client_host_header))
    out.append(("X-Request-ID", request_id))
    out.extend(extra)
    return out


def client_headers(raw: RawHeaders, request_id: str) -> list[tuple[bytes, bytes]]:
    """Response headers for the client from the upstream's raw response headers."""
    named: frozenset[bytes] = frozenset()
    out = []
    has_id = False
    for name, value in raw:
        lower = name.lower()
        if lower == b"connection":
            named |= connection_tokens(value)
        elif lower not in HOP_BY_HOP and not lower.startswith(b"proxy-"):
            has_id = has_id or lower == b"x-request-id"
            out.append((lower, value))
    if named:
        out = [(name, value) for name, value in out if name not in named]
    if not has_id:
        out.append((b"x-request-id", request_id.encode("ascii")))
    return out


def content_length(
    raw: list[tuple[bytes, bytes]], max_header_bytes: int
) -> tuple[int | None, bool]:
    """``(declared length, chunked)`` after refusing ambiguous framing.

    Both Transfer-Encoding and Content-Length, differing or malformed Content-Length
    values and any transfer coding other than ``chunked`` are request smuggling
    vectors: refused with :class:`BadRequest`. Oversized headers: :class:`HeadersTooLarge`.
    """
    size = 0
    lengths: set[bytes] = set()
    codings: list[bytes] = []
    for name, value in raw:
        size += len(name) + len(value) + 4
        if name == b"content-length":
            lengths.update(part.strip() for part in value.split(b","))
        elif name == b"transfer-encoding":
            codings.extend(part.strip().lower() for part in value.split(b","))
    if size > max_header_bytes:
        raise HeadersTooLarge(f"headers are {size} bytes, the limit is {max_header_bytes}")
    if codings and lengths:
        raise BadRequest("both Transfer-Encoding and Content-Length: refused")
    if codings:
        if codings != [b"chunked"]:
            raise BadRequest("only Transfer-Encoding: chunked is accepted")
        return None, True
    if len(lengths) > 1:
        raise BadRequest("conflicting Content-Length values")
    if lengths:
        value = lengths.pop()
        if not value.isdigit() or len(value) > 18:
            raise BadRequest("malformed Content-Length")
        return int(value), False
    return None, False
