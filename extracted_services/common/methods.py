"""HTTP methods the way the monolith (DRF) answers them, for every API path of a service.

DRF resolves the path to ONE view first and checks the method after; so here the path
picks one route template (a literal path before one with parameters, as DRF's routers
list ``/stock/reserve/`` before ``/stock/{id}/``; a parameter never holds a dot, as
DRF's ``[^/.]+``), and that template's methods are the path's methods:

- every answer on an API path carries ``Allow`` with them in DRF's order, with HEAD
  (where GET is served) and OPTIONS;
- another method answers 405 ``method_not_allowed`` with that ``Allow``;
- HEAD is served as GET without the body;
- OPTIONS answers 200 with a description of the path (DRF's ``SimpleMetadata`` shape),
  or the 401/403 a GET of the path gets (DRF checks permissions for OPTIONS too).

    app.add_middleware(MethodsMiddleware)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from extracted_services.common.errors import MethodNotAllowed
from extracted_services.common.handlers import render

DRF_ORDER = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
API_PREFIX = "/api/"


def _api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """Every API route, also inside included routers (FastAPI keeps those nested)."""
    for route in routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from _api_routes(nested.routes)
        elif isinstance(route, APIRoute) and route.path.startswith(API_PREFIX):
            yield route


def allowed_methods(routes: Iterable[Any], path: str) -> list[str]:
    """The methods of the one route template serving ``path``, in DRF's order (empty: none)."""
    templates: dict[str, set[str]] = {}
    for route in _api_routes(routes):
        found = route.path_regex.match(path)
        if found and not any("." in value for value in found.groupdict().values()):
            templates.setdefault(route.path, set()).update(route.methods or ())
    if not templates:
        return []
    chosen = min(templates, key=lambda template: template.count("{"))  # first of the fewest
    methods = templates[chosen]
    if "GET" in methods:
        methods.add("HEAD")
    methods.add("OPTIONS")
    return [method for method in DRF_ORDER if method in methods]


class MethodsMiddleware:
    """``Allow`` on every API answer, 405 for other methods, HEAD as GET, OPTIONS as DRF."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        allowed = allowed_methods(scope["app"].router.routes, scope["path"])
        if not allowed:
            await self.app(scope, receive, send)
            return
        allow = ", ".join(allowed)
        method = scope["method"]
        if method == "OPTIONS":
            await self._options(scope, receive, send, allow, "GET" in allowed)
            return
        if method not in allowed:
            refusal = render(MethodNotAllowed(f'Method "{method}" not allowed.'), {"Allow": allow})
            await refusal(scope, receive, send)
            return
        if method == "HEAD":
            scope = {**scope, "method": "GET"}

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                headers.append((b"allow", allow.encode("latin-1")))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and method == "HEAD":
                message = {**message, "body": b""}
            await send(message)

        await self.app(scope, receive, send_with_allow)

    async def _options(
        self, scope: Scope, receive: Receive, send: Send, allow: str, readable: bool
    ) -> None:
        """OPTIONS passes the path's permission checks like DRF's (a path whose reads need
        credentials answers their 401/403): the GET is run and only its refusal is kept."""
        if readable:
            held: list[Message] = []

            async def hold(message: Message) -> None:
                held.append(message)

            await self.app({**scope, "method": "GET"}, receive, hold)
            start = next((m for m in held if m["type"] == "http.response.start"), None)
            if start is not None and start["status"] in {401, 403}:
                headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"allow"]
                held[held.index(start)] = {
                    **start,
                    "headers": [*headers, (b"allow", allow.encode("latin-1"))],
                }
                for message in held:
                    await send(message)
                return
        await _metadata(send, allow)


async def _metadata(send: Send, allow: str) -> None:
    body = json.dumps(
        {"renders": ["application/json"], "parses": ["application/json"]},
        separators=(",", ":"),
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"allow", allow.encode("latin-1")),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
