"""The admin API under a configurable prefix (default ``/_strangler/``).

``health`` is open (load balancers probe it); everything else needs
``Authorization: Bearer <STRANGLER_ADMIN_TOKEN>`` and is off when no token is set.

    GET  {prefix}health     {"status": "ok", "table": {...}, "reload_failing": false}
    GET  {prefix}table      active table: version, hash, source, generation, last reload error
    GET  {prefix}breakers   per-upstream breaker state
    POST {prefix}reload     reload the route file now
    GET  {prefix}metrics    Prometheus text format
    GET  {prefix}dashboard  the migration dashboard (:mod:`migration_plans.control.dashboard.app`)
"""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from migration_plans.control.dashboard.app import Dashboard
from strangler_proxy.edge.errors import NotFound, Unauthorized

if TYPE_CHECKING:
    from strangler_proxy.app import StranglerProxy

JSON = b"application/json"
Answer = tuple[int, bytes, bytes]


class Admin:
    """Answers admin requests for one proxy."""

    def __init__(self, proxy: StranglerProxy, token: SecretStr | None) -> None:
        self.proxy = proxy
        self.token = token.get_secret_value().encode() if token is not None else None
        self.dashboard = Dashboard(proxy, self.token, proxy.config.admin_prefix)

    def handle(self, method: str, name: str, headers: dict[bytes, bytes]) -> Answer:
        """Status, body and content type for ``{prefix}{name}``."""
        if (method, name) in (("GET", "health"), ("HEAD", "health")):
            return _json(self.health())
        self._authorize(headers)
        if method == "GET" and name == "table":
            return _json(self.table())
        if method == "GET" and name == "breakers":
            return _json(self.breakers())
        if method == "POST" and name == "reload":
            reloaded = self.proxy.holder.reload()
            return _json({"reloaded": reloaded, **self.table()})
        if method == "GET" and name == "metrics":
            return 200, self.proxy.metrics.render(), b"text/plain; version=0.0.4; charset=utf-8"
        raise NotFound(f"no admin endpoint {method} {name!r}")

    def _authorize(self, headers: dict[bytes, bytes]) -> None:
        if self.token is None:
            raise Unauthorized("admin API disabled: set STRANGLER_ADMIN_TOKEN")
        given = headers.get(b"authorization", b"")
        if not hmac.compare_digest(given, b"Bearer " + self.token):
            raise Unauthorized()

    def health(self) -> dict[str, Any]:
        current = self.proxy.holder.current
        return {
            "status": "ok",
            "table": {"version": current.version, "hash": current.hash},
            "reload_failing": self.proxy.holder.last_error is not None,
        }

    def table(self) -> dict[str, Any]:
        holder = self.proxy.holder
        current = holder.current
        error = holder.last_error
        return {
            "version": current.version,
            "hash": current.hash,
            "sha256": current.sha256,
            "source": current.source,
            "generation": holder.generation,
            "loaded_at": current.loaded_at,
            "routes": [compiled.route.name for compiled in current.router.routes],
            "default_upstream": current.table.default_upstream,
            "last_reload_error": None
            if error is None
            else {"at": error.at, "issues": list(error.issues)},
        }

    def breakers(self) -> dict[str, Any]:
        return {name: b.snapshot() for name, b in self.proxy.forwarder.breakers.items()}


def _json(data: dict[str, Any]) -> Answer:
    return 200, json.dumps(data, separators=(",", ":")).encode(), JSON
