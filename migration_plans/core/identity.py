"""The signed identity header the proxy forwards and the services verify.

The proxy authenticates the client, then sends ``X-Strangler-Identity`` upstream:
``<base64url(JSON claims)>.<hex HMAC-SHA256 of that text>``. Claims are ``sub``
(user id), ``name`` (username) and ``exp`` (unix seconds). Services refuse writes
without a valid, unexpired header. Clients can never send it themselves: the proxy
strips every ``X-Strangler-*`` header at the edge.

    header = sign_identity(Identity(sub="42", name="alice"), key=b"secret", ttl=60)
    identity = verify_identity(header, key=b"secret")
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

__all__ = [
    "DEV_IDENTITY_KEY",
    "IDENTITY_HEADER",
    "Identity",
    "InvalidIdentity",
    "sign_identity",
    "verify_identity",
]

IDENTITY_HEADER = "X-Strangler-Identity"
#: The key of local development when none is configured (refused unless allowed).
DEV_IDENTITY_KEY = "strangler-development-identity-key"


class InvalidIdentity(Exception):
    """The identity header is missing, malformed, badly signed or expired."""


@dataclass(frozen=True)
class Identity:
    """Who the proxy says the caller is."""

    sub: str
    name: str = ""


def _mac(payload: str, key: bytes) -> str:
    return hmac.new(key, payload.encode("ascii"), hashlib.sha256).hexdigest()


def sign_identity(
    identity: Identity, *, key: bytes, ttl: float = 60.0, now: float | None = None
) -> str:
    """Header value asserting ``identity`` for ``ttl`` seconds."""
    expires = int((time.time() if now is None else now) + ttl)
    claims = json.dumps(
        {"sub": identity.sub, "name": identity.name, "exp": expires}, separators=(",", ":")
    )
    payload = base64.urlsafe_b64encode(claims.encode()).decode("ascii").rstrip("=")
    return f"{payload}.{_mac(payload, key)}"


def verify_identity(header: str | None, *, key: bytes, now: float | None = None) -> Identity:
    """The identity in ``header``; :class:`InvalidIdentity` saying why it is refused."""
    if not header:
        raise InvalidIdentity(f"missing {IDENTITY_HEADER} header")
    payload, _, signature = header.partition(".")
    if not payload or not signature:
        raise InvalidIdentity(f"malformed {IDENTITY_HEADER} header")
    if not hmac.compare_digest(_mac(payload, key), signature):
        raise InvalidIdentity(f"bad signature on {IDENTITY_HEADER} header")
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        sub, name, expires = str(claims["sub"]), str(claims.get("name", "")), int(claims["exp"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidIdentity(f"unreadable claims in {IDENTITY_HEADER} header") from exc
    if expires < (time.time() if now is None else now):
        raise InvalidIdentity(f"expired {IDENTITY_HEADER} header")
    return Identity(sub=sub, name=name)
