"""Sticky, deterministic canary assignment.

A client's key (header, cookie or address) is hashed with the route name into a
point in [0, 100); the split's weights, in file order, cut that range into
intervals. The same key therefore lands on the same upstream on every replica and
across reloads for as long as the weights stay the same, and moving 10 -> 20
percent only moves clients from the old side to the new one.

The hash is keyed (BLAKE2b in its MAC mode) with a secret every replica shares,
``$STRANGLER_CANARY_KEY``: without it a client could compute which cookie or user id
lands on the side it wants. Unset, a fixed development key is used and a warning
is logged once per process.

    choose(canary, "product-detail", "user-42", key) == "catalog"
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from http.cookies import CookieError, SimpleCookie

from strangler_proxy.routetable.model import Canary, Sticky

CANARY_KEY_ENV = "STRANGLER_CANARY_KEY"
DEV_CANARY_KEY = b"strangler-development-canary-key"
_SCALE = float(1 << 64)

log = logging.getLogger("strangler.proxy")


@functools.cache
def sticky_secret() -> bytes:
    """The canary hash key from ``$STRANGLER_CANARY_KEY`` (read once per process)."""
    value = os.environ.get(CANARY_KEY_ENV, "")
    if not value:
        log.warning(
            "%s is not set: canary assignment uses the development key, so clients can "
            "choose their side; set the same secret on every proxy replica",
            CANARY_KEY_ENV,
        )
        return DEV_CANARY_KEY
    return value.encode()


def point(route_name: str, key: str, secret: bytes = DEV_CANARY_KEY) -> float:
    """Where ``key`` falls in [0, 100) for ``route_name`` under ``secret``."""
    digest = hashlib.blake2b(
        f"{route_name}\x00{key}".encode(), digest_size=8, key=secret[:64]
    ).digest()
    return int.from_bytes(digest, "big") / _SCALE * 100.0


def choose(canary: Canary, route_name: str, key: str, secret: bytes = DEV_CANARY_KEY) -> str:
    """The upstream ``key`` is assigned to."""
    where = point(route_name, key, secret)
    upper = 0.0
    chosen = ""
    for upstream, weight in canary.split.items():
        if weight <= 0:
            continue
        upper += weight
        chosen = upstream
        if where < upper:
            break
    return chosen


def sticky_key(sticky: Sticky, headers: dict[bytes, bytes], client: str) -> str:
    """The key for ``sticky`` from request headers; the client address when it is absent."""
    if sticky.header is not None:
        value = headers.get(sticky.header.lower().encode("latin-1"))
        return value.decode("latin-1") if value else client
    if sticky.cookie is not None:
        return _cookie(headers.get(b"cookie"), sticky.cookie) or client
    return client


def _cookie(header: bytes | None, name: str) -> str | None:
    if not header:
        return None
    jar = SimpleCookie()
    try:
        jar.load(header.decode("latin-1"))
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None
