"""HTTP vocabulary every package shares: method sets and hop-by-hop header names."""

from __future__ import annotations

__all__ = ["HOP_BY_HOP", "HTTP_METHODS", "SAFE_METHODS"]

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
