"""Header rewriting at the edge, both directions.

Towards the upstream: hop-by-hop headers (Connection and every header it names,
Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*) go; so do the client's
``X-Strangler-*``, ``X-Forwarded-*``, ``Forwarded`` and ``X-Real-IP`` (never trusted).
The proxy then sets X-Forwarded-For/-Proto/-Host from its own connection data, the
request id, the Host the upstream expects and, when it authenticated the client,
the signed identity header. Back to the client: hop-by-hop headers go, the request
id is added.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

from strangler_proxy.exceptions import BadRequest, HeadersTooLarge

HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)
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
    return uuid.uuid4().hex


def connection_tokens(headers: RawHeaders) -> frozenset[bytes]:
    """Header names the ``Connection`` header declares hop-by-hop."""
    names: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            names.update(token.strip().lower() for token in value.split(b","))
    return frozenset(names)


def _drop(name: bytes, named: frozenset[bytes]) -> bool:
    return (
        name in HOP_BY_HOP
        or name in named
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
    request_id: str,
    extra: Iterable[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """Headers to send upstream for a request whose ASGI headers are ``raw``."""
    named = connection_tokens(raw)
    out = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in raw
        if not _drop(name, named)
    ]
    out.append(("Host", host))
    out.append(("X-Forwarded-For", client_host))
    out.append(("X-Forwarded-Proto", scheme))
    out.append(("X-Forwarded-Host", _client_host_header(raw)))
    out.append(("X-Request-ID", request_id))
    out.extend(extra)
    return out


def _client_host_header(raw: list[tuple[bytes, bytes]]) -> str:
    for name, value in raw:
        if name == b"host":
            return value.decode("latin-1")
    return ""


def client_headers(raw: RawHeaders, request_id: str) -> list[tuple[bytes, bytes]]:
    """Response headers for the client from the upstream's raw response headers."""
    pairs = list(raw)
    named = connection_tokens(pairs)
    out = []
    has_id = False
    for name, value in pairs:
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in named or lower.startswith(b"proxy-"):
            continue
        has_id = has_id or lower == b"x-request-id"
        out.append((lower, value))
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
