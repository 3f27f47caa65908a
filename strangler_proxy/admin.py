"""The admin API under a configurable prefix (default ``/_strangler/``).

``health`` is open (load balancers probe it); everything else needs
``Authorization: Bearer <STRANGLER_ADMIN_TOKEN>`` and is off when no token is set.
Wrong bearer tokens are throttled per client address (:mod:`strangler_proxy.throttling`,
shared with the mounted apps' sign-ins): past the allowance, 429 with ``Retry-After``
and the token is not checked.

    GET  {prefix}health     {"status": "ok", "table": {...}, "reload_failing": false}
    GET  {prefix}table      active table: version, hash, source, generation, routes, each
                            upstream's endpoints, last reload error
    GET  {prefix}breakers   per-upstream breaker state
    GET  {prefix}pools      per-upstream pool: connections busy/idle, requests waiting, in
                            flight per route and the route limit (``upstream_route_share``)
    GET  {prefix}live       this replica: instance id, served epochs, write fences per context
    POST {prefix}reload     reload the route file now
    GET  {prefix}metrics    Prometheus text format
    ANY  {prefix}{mount}[/...]  an app mounted by the host (``strangler proxy serve`` mounts
                            the control plane's dashboard as ``dashboard``); it reads the
                            proxy through :class:`strangler_proxy.introspection.ProxyView`
                            and does its own authentication
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from strangler_proxy.edge.errors import NotFound, Unauthorized
from strangler_proxy.introspection import (
    AdminMount,
    ASGIApp,
    Message,
    ProxyIntrospection,
    Receive,
    Scope,
    Send,
)

JSON = b"application/json"
Answer = tuple[int, bytes, bytes]


class Admin:
    """Answers admin requests for one proxy, and hands mounted paths to their apps."""

    def __init__(
        self,
        view: ProxyIntrospection,
        *,
        reload: Callable[[], Awaitable[bool]],
        mounts: Mapping[str, AdminMount] | None = None,
    ) -> None:
        self.view = view
        self.token = view.admin_token
        self.throttle = view.admin_auth.throttle
        self.prefix = view.admin_prefix
        self._reload = reload
        self.mounts: dict[str, ASGIApp] = {
            name.strip("/"): build(view) for name, build in (mounts or {}).items()
        }

    async def serve(
        self, scope: Scope, receive: Receive, send: Send, path: str, request_id: str
    ) -> int:
        """Answer the admin request for the normalised ``path``; returns the status sent."""
        name = path[len(self.prefix) :].rstrip("/")
        mount = self.mount_for(name)
        if mount is not None:
            root_path = scope.get("root_path", "") + self.prefix + mount
            child = {**scope, "path": path, "root_path": root_path}
            return await _tagged(self.mounts[mount], child, receive, send, request_id)
        client = scope["client"][0] if scope.get("client") else ""
        status, body, content_type = await self.handle(
            scope["method"], name, dict(scope["headers"]), client
        )
        headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return status

    def mount_for(self, name: str) -> str | None:
        """The mount that owns the admin path ``name`` (prefix stripped), if any."""
        for mount in self.mounts:
            if name == mount or name.startswith(mount + "/"):
                return mount
        return None

    async def handle(
        self, method: str, name: str, headers: dict[bytes, bytes], client: str = ""
    ) -> Answer:
        """Status, body and content type for ``{prefix}{name}`` asked by address ``client``."""
        if (method, name) in (("GET", "health"), ("HEAD", "health")):
            return _json(self.health())
        self._authorize(headers, client)
        if method == "GET" and name == "table":
            return _json(self.table())
        if method == "GET" and name == "breakers":
            return _json(self.view.breakers())
        if method == "GET" and name == "pools":
            return _json(self.view.pools())
        if method == "GET" and name == "live":
            return _json(self.view.live())
        if method == "POST" and name == "reload":
            reloaded = await self._reload()  # parsed in a thread: the loop keeps serving
            return _json({"reloaded": reloaded, **self.table()})
        if method == "GET" and name == "metrics":
            return 200, self.view.metrics_text(), b"text/plain; version=0.0.4; charset=utf-8"
        raise NotFound(f"no admin endpoint {method} {name!r}")

    def _authorize(self, headers: dict[bytes, bytes], client: str) -> None:
        if self.token is None:
            raise Unauthorized("admin API disabled: set STRANGLER_ADMIN_TOKEN")
        given = headers.get(b"authorization")
        if given is None:  # no credential, no guess: nothing to count
            raise Unauthorized()
        self.throttle.take(client)
        if not hmac.compare_digest(given, b"Bearer " + self.token):
            raise Unauthorized()
        self.throttle.give_back(client)

    def health(self) -> dict[str, Any]:
        table = self.view.table()
        return {
            "status": "ok",
            "table": {"version": table.version, "hash": table.hash},
            "reload_failing": table.last_reload_error is not None,
        }

    def table(self) -> dict[str, Any]:
        table = self.view.table()
        error = table.last_reload_error
        return {
            "version": table.version,
            "hash": table.hash,
            "sha256": table.sha256,
            "source": table.source,
            "generation": table.generation,
            "loaded_at": table.loaded_at,
            "routes": list(table.route_names),
            "default_upstream": table.default_upstream,
            "upstreams": {name: list(endpoints) for name, endpoints in table.upstreams.items()},
            "last_reload_error": None
            if error is None
            else {"at": error.at, "issues": list(error.issues)},
        }


async def _tagged(app: ASGIApp, scope: Scope, receive: Receive, send: Send, request_id: str) -> int:
    """Run a mounted app, its answer tagged with the request id; returns the status sent."""
    status = 0

    async def tagged(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            message = {**message, "headers": headers}
        await send(message)

    await app(scope, receive, tagged)
    return status


def _json(data: dict[str, Any]) -> Answer:
    return 200, json.dumps(data, separators=(",", ":")).encode(), JSON
