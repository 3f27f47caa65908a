"""Path normalisation: done once, before matching; the result is what gets forwarded.

Percent-escapes of unreserved characters are decoded, other escapes are upper-cased,
bytes outside the RFC 3986 ``pchar`` set are encoded, duplicate slashes collapse and
dot segments are resolved. Encoded slashes (``%2F``) and backslashes (raw or ``%5C``)
are refused by default, or turned into ``/`` under ``SlashPolicy.NORMALISE``. A path
that climbs above the root, carries control characters or a malformed escape is
refused with :class:`BadPath`. So is, by default, a double-encoded dot segment, slash or
backslash (``%252e%252e``, ``%252f``, ``%255c``): harmless to a backend that decodes
once, a path-confusion hole behind one that decodes twice (a second proxy); pass
``reject_double_encoded=False`` to forward them. The output is idempotent: normalising it again gives
the same string, so no request can match one route and reach another.

    normalize_path(b"/api/v1/%70roducts//42/./") == "/api/v1/products/42/"
"""

from __future__ import annotations

import re
from enum import StrEnum
from urllib.parse import unquote

from strangler_proxy.edge.errors import BadPath, PathTooLong

UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
PATH_SAFE = UNRESERVED | frozenset(b"!$&'()*+,;=:@/")
HEX = frozenset(b"0123456789abcdefABCDEF")
DEFAULT_MAX_LENGTH = 8192

# Segments joined by single slashes, each unambiguous (no '/' inside the classes), so a
# path that does not match fails in linear time: a nested optional '/' made it exponential.
_SEGMENT = rb"[A-Za-z0-9\-_~!$&'()*+,;=:@][A-Za-z0-9\-._~!$&'()*+,;=:@]*"
_ALREADY_NORMAL = re.compile(rb"/(?:" + _SEGMENT + rb"(?:/" + _SEGMENT + rb")*/?)?")
_SLASHES = re.compile(r"/{2,}")
_DOUBLE_ENCODED = re.compile(r"%25(?:2[EF]|5C)", re.IGNORECASE)
_TWICE_DECODED_DOTS = frozenset({".", ".."})


class SlashPolicy(StrEnum):
    """What to do with encoded slashes and backslashes."""

    REJECT = "reject"
    NORMALISE = "normalise"


def normalize_path(
    raw: bytes | str,
    *,
    slashes: SlashPolicy = SlashPolicy.REJECT,
    max_length: int = DEFAULT_MAX_LENGTH,
    reject_double_encoded: bool = True,
) -> str:
    """The normalised form of ``raw`` (an undecoded request path without query string)."""
    data = raw.encode("utf-8") if isinstance(raw, str) else raw
    if len(data) > max_length:
        raise PathTooLong(f"path is {len(data)} bytes, the limit is {max_length}")
    if _ALREADY_NORMAL.fullmatch(data) and b"//" not in data:
        return data.decode("ascii")
    if not data.startswith(b"/"):
        raise BadPath("path must start with '/'")
    path = _remove_dot_segments(_SLASHES.sub("/", _decode(data, slashes)))
    if reject_double_encoded and "%25" in path:
        _refuse_double_encoded(path)
    return path


def _decode(data: bytes, slashes: SlashPolicy) -> str:
    out: list[str] = []
    index = 0
    while index < len(data):
        byte = data[index]
        if byte == 0x25:  # '%'
            out.append(_escape(data, index, slashes))
            index += 3
            continue
        if byte == 0x5C:  # '\'
            out.append(_slash(slashes, "backslash in path"))
        elif byte < 0x21 or byte == 0x7F:
            raise BadPath("control character or space in path")
        elif byte == 0x23:  # '#'
            raise BadPath("fragment in path")
        elif byte in PATH_SAFE:
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
        index += 1
    return "".join(out)


def _refuse_double_encoded(path: str) -> None:
    """:class:`BadPath` when decoding ``path`` twice gives a dot segment or a slash."""
    for segment in path.split("/"):
        if not _DOUBLE_ENCODED.search(segment):
            continue
        twice = unquote(unquote(segment))
        if "/" in twice or "\\" in twice or twice in _TWICE_DECODED_DOTS:
            raise BadPath(
                f"double-encoded dot segment or slash in path segment {segment!r} "
                "(refused by default: a backend that decodes twice would see another path)"
            )


def _escape(data: bytes, index: int, slashes: SlashPolicy) -> str:
    pair = data[index + 1 : index + 3]
    if len(pair) != 2 or not all(char in HEX for char in pair):
        raise BadPath("malformed percent-encoding in path")
    value = int(pair, 16)
    if value in UNRESERVED:
        return chr(value)
    if value in (0x2F, 0x5C):
        return _slash(slashes, "encoded slash or backslash in path")
    if value < 0x20 or value == 0x7F:
        raise BadPath("encoded control character in path")
    return f"%{value:02X}"


def _slash(slashes: SlashPolicy, reason: str) -> str:
    if slashes is SlashPolicy.REJECT:
        raise BadPath(reason)
    return "/"


def _remove_dot_segments(path: str) -> str:
    segments = path.split("/")[1:]
    kept: list[str] = []
    for position, segment in enumerate(segments):
        last = position == len(segments) - 1
        if segment == "..":
            if not kept or kept == [""]:
                raise BadPath("path climbs above the root")
            kept.pop()
        elif segment != ".":
            kept.append(segment)
            continue
        if last:
            kept.append("")
    return "/" + "/".join(kept)
