"""Allowed hosts: a request whose ``Host`` the service does not serve is refused (400).

Django's ``ALLOWED_HOSTS`` for the services: absolute URLs (pagination's ``next`` and
``previous``) are built from the request's Host, so an unchecked Host lets a client put
its own domain into the links a service returns (``Host: evil.example/phish?x=``).

    app.add_middleware(AllowedHostsMiddleware, allowed=settings.hosts)
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from extracted_services.common.errors import DisallowedHost
from migration_plans.core.http import host_allowed


class AllowedHostsMiddleware:
    """Answers 400 ``disallowed_host`` unless the Host header is one of ``allowed``.

    A request without Host (HTTP/1.0) passes: its links use the address it reached.
    """

    def __init__(self, app: ASGIApp, *, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = tuple(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = next((value for name, value in scope["headers"] if name == b"host"), None)
            if host is not None and not host_allowed(host.decode("latin-1"), self.allowed):
                await _refuse(send, host.decode("latin-1"))
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, host: str) -> None:
    error = DisallowedHost(
        f"Invalid Host header {host!r}: add it to ALLOWED_HOSTS (<CONTEXT>_ALLOWED_HOSTS or "
        "STRANGLER_ALLOWED_HOSTS)."
    )
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
