"""HTTP vocabulary every package shares: method sets, hop-by-hop header names, Host checks."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["HOP_BY_HOP", "HTTP_METHODS", "LOOPBACK_HOSTS", "SAFE_METHODS", "host_allowed"]

HTTP_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})
"""The methods a route table or a plan may name."""

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
"""Methods that do not change state (RFC 9110, 9.2.1): retried, mirrored, fall back."""

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
"""Headers that describe one connection and are never forwarded (RFC 9110, 7.6.1), lower case."""

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
"""Host names every component accepts by default (Django's defaults for DEBUG)."""

_HOST = re.compile(r"^([a-z0-9.-]+|\[[a-f0-9:.]+\])(?::[0-9]+)?$")


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """Whether a ``Host`` value (port optional) is one of ``allowed``, as Django checks it.

    Patterns are names (``shop.example``), ``.shop.example`` for the domain and its
    subdomains, or ``*`` for any well-formed host. A malformed value is never allowed.

        host_allowed("127.0.0.1:8000", LOOPBACK_HOSTS) is True
    """
    match = _HOST.fullmatch(host.lower().rstrip("."))
    if match is None:
        return False
    name = match.group(1).rstrip(".")
    for pattern in allowed:
        pattern = pattern.lower()
        if pattern == "*" or pattern == name:
            return True
        if pattern.startswith(".") and (name == pattern[1:] or name.endswith(pattern)):
            return True
    return False
