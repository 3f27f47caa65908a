"""The signed identity header the proxy forwards and the services verify.

The proxy authenticates the client, then sends ``X-Strangler-Identity`` upstream:
``<base64url(JSON claims)>.<hex HMAC-SHA256 of that text>``. Claims are ``sub``
(user id), ``name`` (username), ``exp`` (unix seconds, :data:`DEFAULT_IDENTITY_TTL`
after signing unless told) and ``aud``: the upstream the header is for (a service's
context name, e.g. ``catalog``; a list for a tool that talks to several). A service
verifies the audience is its own context, so an upstream that receives a header
cannot replay it to another service. Services refuse writes without a valid,
unexpired header. Clients can never send it themselves: the proxy strips every
``X-Strangler-*`` header at the edge.

    header = sign_identity(Identity(sub="42", name="alice"), key=b"secret", audience="catalog")
    identity = verify_identity(header, key=b"secret", audience="catalog")
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "DEFAULT_IDENTITY_TTL",
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
#: Seconds an identity header is valid by default: one request, with clock skew.
DEFAULT_IDENTITY_TTL = 30.0


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
    identity: Identity,
    *,
    key: bytes,
    audience: str | Iterable[str],
    ttl: float = DEFAULT_IDENTITY_TTL,
    now: float | None = None,
) -> str:
    """Header value asserting ``identity`` to ``audience`` for ``ttl`` seconds."""
    expires = int((time.time() if now is None else now) + ttl)
    aud = audience if isinstance(audience, str) else sorted(audience)
    claims = json.dumps(
        {"sub": identity.sub, "name": identity.name, "exp": expires, "aud": aud},
        separators=(",", ":"),
    )
    payload = base64.urlsafe_b64encode(claims.encode()).decode("ascii").rstrip("=")
    return f"{payload}.{_mac(payload, key)}"


def verify_identity(
    header: str | None, *, key: bytes, audience: str, now: float | None = None
) -> Identity:
    """The identity in ``header`` if it is for ``audience``; :class:`InvalidIdentity` saying
    why it is refused."""
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
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else [str(item) for item in aud or ()]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidIdentity(f"unreadable claims in {IDENTITY_HEADER} header") from exc
    if expires < (time.time() if now is None else now):
        raise InvalidIdentity(f"expired {IDENTITY_HEADER} header")
    if audience not in audiences:
        raise InvalidIdentity(
            f"{IDENTITY_HEADER} header is for {', '.join(audiences) or 'no audience'}, "
            f"not {audience}"
        )
    return Identity(sub=sub, name=name)
