"""The caller's identity, from the header the proxy signs (``X-Strangler-Identity``).

Reads are anonymous; every write depends on :func:`require_identity`, which answers
401 unless the header carries a valid, unexpired HMAC signature under the service's key
for this service's audience (its context name): a header signed for another upstream
is refused.
"""

from __future__ import annotations

from fastapi import Request

from extracted_services.common.errors import AuthenticationFailed, NotAuthenticated
from migration_plans.core.identity import (
    IDENTITY_HEADER,
    Identity,
    InvalidIdentity,
    verify_identity,
)


def require_identity(request: Request) -> Identity:
    """The verified identity of the caller; 401 without a valid header."""
    header = request.headers.get(IDENTITY_HEADER)
    if not header:
        raise NotAuthenticated()
    try:
        settings = request.app.state.settings
        return verify_identity(header, key=settings.identity_secret, audience=settings.context)
    except InvalidIdentity as exc:
        raise AuthenticationFailed(str(exc)) from exc
