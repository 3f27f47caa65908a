"""Route matching: each route answers ``matches() -> (Match, params)``; the router is a loop.

Canary assignment and fallback are outcomes of a match (fields of :class:`Target`),
not special paths through the proxy.

    router = Router(table)
    target = router.resolve("GET", "/api/v1/products/42/", headers, "10.0.0.7")
    target.upstream, target.route_name, target.fallback
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from migration_plans.core.http import SAFE_METHODS
from strangler_proxy.routetable.model import Route, RouteTable
from strangler_proxy.routing._canary import choose, sticky_key


class Match(Enum):
    NONE = 0
    PARTIAL = 1  # the path matches, the method does not
    FULL = 2


@dataclass(frozen=True, slots=True)
class Target:
    """Where one request goes."""

    upstream: str
    route: Route | None = None
    context: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    fallback: str | None = None  # upstream for a read when ``upstream`` is down
    canary: bool = False

    @property
    def route_name(self) -> str:
        return self.route.name if self.route is not None else "default"


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    """A route with its context; matching only, no I/O."""

    route: Route
    context: str

    def matches(self, method: str, path: str) -> tuple[Match, dict[str, str]]:
        params = self.route.template.match(path)
        if params is None:
            return Match.NONE, {}
        if method not in self.route.methods:
            return Match.PARTIAL, params
        return Match.FULL, params


class Router:
    """Routes in file order; the default upstream for anything unmatched."""

    def __init__(self, table: RouteTable) -> None:
        self.default = table.default_upstream
        self.routes = [CompiledRoute(route, ctx) for _, ctx, route in table.located_routes()]

    def resolve(self, method: str, path: str, headers: dict[bytes, bytes], client: str) -> Target:
        """The target for a normalised request."""
        for compiled in self.routes:
            match, params = compiled.matches(method, path)
            if match is Match.FULL:
                return self._target(compiled, method, params, headers, client)
        return Target(upstream=self.default)

    def _target(
        self,
        compiled: CompiledRoute,
        method: str,
        params: dict[str, str],
        headers: dict[bytes, bytes],
        client: str,
    ) -> Target:
        route = compiled.route
        fallback = self.default if route.fallback and method in SAFE_METHODS else None
        if route.canary is None:
            assert route.upstream is not None
            upstream, canary = route.upstream, False
        else:
            key = sticky_key(route.canary.sticky, headers, client)
            upstream, canary = choose(route.canary, route.name, key), True
        if fallback == upstream:
            fallback = None
        return Target(upstream, route, compiled.context, params, fallback, canary)
