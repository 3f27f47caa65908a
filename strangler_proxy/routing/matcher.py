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
from strangler_proxy.edge.errors import NotFound
from strangler_proxy.routetable.model import Route, RouteTable
from strangler_proxy.routing._canary import choose, sticky_key, sticky_secret


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
    """Routes in file order; the default upstream for anything unmatched.

    A private path (``/metrics`` by default) is :class:`NotFound` unless a route that
    names it in its own path or prefix matches: a catch-all never exposes it.
    """

    def __init__(self, table: RouteTable, *, canary_key: bytes | None = None) -> None:
        self.default = table.default_upstream
        self.routes = [CompiledRoute(route, ctx) for _, ctx, route in table.located_routes()]
        self.private = tuple(path.rstrip("/") for path in table.private_paths)
        self.canary_key = canary_key if canary_key is not None else sticky_secret()

    def resolve(self, method: str, path: str, headers: dict[bytes, bytes], client: str) -> Target:
        """The target for a normalised request; :class:`NotFound` for a private path."""
        private = self._private(path)
        for compiled in self.routes:
            match, params = compiled.matches(method, path)
            if match is Match.FULL:
                if private is not None and not _names(compiled.route, private):
                    continue
                return self._target(compiled, method, params, headers, client)
        if private is not None:
            raise NotFound(f"{path} is not exposed by the proxy ({private} is private)")
        return Target(upstream=self.default)

    def _private(self, path: str) -> str | None:
        for private in self.private:
            if path.startswith(private) and path[len(private) : len(private) + 1] in ("", "/"):
                return private
        return None

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
            upstream, canary = choose(route.canary, route.name, key, self.canary_key), True
        if fallback == upstream:
            fallback = None
        return Target(upstream, route, compiled.context, params, fallback, canary)


def _names(route: Route, private: str) -> bool:
    """Whether ``route``'s own path or prefix lies under ``private`` (an explicit opt-in)."""
    literal = route.path if route.path is not None else route.prefix or ""
    return literal.startswith(private) and literal[len(private) : len(private) + 1] in ("", "/")
