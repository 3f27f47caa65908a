"""What a running proxy shows to the apps mounted under its admin prefix.

A mounted app (the control plane's migration dashboard, say) never holds the proxy:
it gets a :class:`ProxyView`, a narrow read-only protocol, and answers the requests
for ``{admin prefix}{name}[/...]`` as a plain ASGI app.

    def mount(view: ProxyView) -> ASGIApp: ...
    proxy = StranglerProxy(config, admin_mounts={"dashboard": mount})

:class:`ProxyIntrospection` is the proxy's own implementation (it also backs the
admin API's ``health``, ``table``, ``breakers`` and ``live`` answers).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from strangler_proxy.metrics import ProxyMetrics
from strangler_proxy.routetable import ReloadError, Route, TableHolder
from strangler_proxy.throttling import AuthThrottle
from strangler_proxy.upstream import CircuitBreaker

__all__ = ["ASGIApp", "AdminAuth", "AdminMount", "ProxyIntrospection", "ProxyView", "TableView"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class TableView:
    """The route table a proxy serves, read at one moment."""

    version: str
    hash: str
    sha256: str
    source: str
    generation: int
    loaded_at: float
    default_upstream: str
    upstreams: Mapping[str, tuple[str, ...]]
    """Each upstream's endpoints (base URLs), in table order."""
    route_names: tuple[str, ...]
    """Compiled routes, in match order."""
    contexts: Mapping[str, tuple[Route, ...]]
    """Each context's routes, as written in the file."""
    last_reload_error: ReloadError | None
    """Why the file on disk is refused (the table above keeps serving), or None."""


@dataclass(frozen=True)
class AdminAuth:
    """How the admin API and the apps mounted under it authenticate people.

    ``throttle`` counts failed admin credentials per client address for the whole
    process (admin API bearer tokens and a mounted app's sign-ins alike). A mounted app
    that signs browsers in keeps sessions for at most ``session_idle_seconds`` unused and
    ``session_max_seconds`` in all, and marks its cookie ``Secure`` when
    ``secure_cookie`` (TLS is terminated in front of the proxy) or the request is https.
    """

    throttle: AuthThrottle
    session_idle_seconds: float = 8 * 3600
    session_max_seconds: float = 24 * 3600
    secure_cookie: bool = False


class ProxyView(Protocol):
    """Read-only access to a running proxy, for apps mounted under its admin prefix."""

    @property
    def admin_prefix(self) -> str:
        """The path prefix of the admin API (``/_strangler/`` by default)."""
        ...

    @property
    def admin_token(self) -> bytes | None:
        """The admin bearer token a mounted app must ask for (None: admin API off)."""
        ...

    @property
    def admin_auth(self) -> AdminAuth:
        """The failed-attempt throttle and the session settings a mounted app must use."""
        ...

    def table(self) -> TableView:
        """The route table serving now."""
        ...

    def request_totals(self) -> dict[tuple[str, str], float]:
        """Requests answered so far by (route, upstream), summed over methods and statuses."""
        ...

    def live(self) -> dict[str, Any]:
        """This replica (registry instance id) and, per context, the epoch it serves and
        its write fence (holding, deadline, writes held and in flight)."""
        ...


AdminMount = Callable[[ProxyView], ASGIApp]
"""Builds the app answering ``{admin prefix}{name}[/...]`` for one proxy."""


class ProxyIntrospection:
    """:class:`ProxyView` over a proxy's table holder, metrics and breakers."""

    def __init__(
        self,
        *,
        holder: TableHolder,
        metrics: ProxyMetrics,
        breakers: Callable[[], Mapping[str, CircuitBreaker]],
        pools: Callable[[], Mapping[str, dict[str, object]]] | None = None,
        admin_prefix: str,
        admin_token: bytes | None,
        admin_auth: AdminAuth | None = None,
        live: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._holder = holder
        self._metrics = metrics
        self._breakers = breakers
        self._pools = pools
        self._admin_prefix = admin_prefix
        self._admin_token = admin_token
        self._admin_auth = admin_auth or AdminAuth(AuthThrottle())
        self._live = live

    @property
    def admin_prefix(self) -> str:
        return self._admin_prefix

    @property
    def admin_token(self) -> bytes | None:
        return self._admin_token

    @property
    def admin_auth(self) -> AdminAuth:
        return self._admin_auth

    def table(self) -> TableView:
        holder = self._holder
        current = holder.current
        return TableView(
            version=current.version,
            hash=current.hash,
            sha256=current.sha256,
            source=current.source,
            generation=holder.generation,
            loaded_at=current.loaded_at,
            default_upstream=current.table.default_upstream,
            upstreams={name: up.endpoints for name, up in current.table.upstreams.items()},
            route_names=tuple(compiled.route.name for compiled in current.router.routes),
            contexts={name: tuple(group.routes) for name, group in current.table.contexts.items()},
            last_reload_error=holder.last_error,
        )

    def request_totals(self) -> dict[tuple[str, str], float]:
        totals: dict[tuple[str, str], float] = {}
        for family in self._metrics.requests.collect():
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue
                key = (sample.labels["route"], sample.labels["upstream"])
                totals[key] = totals.get(key, 0.0) + sample.value
        return totals

    def live(self) -> dict[str, Any]:
        return {"following": False, "contexts": {}} if self._live is None else self._live()

    def breakers(self) -> dict[str, dict[str, object]]:
        """Each upstream's breaker state (the admin API's ``breakers``)."""
        return {name: breaker.snapshot() for name, breaker in self._breakers().items()}

    def pools(self) -> dict[str, dict[str, object]]:
        """Each upstream's pool: connections busy, idle and waited for, requests in flight
        per route and the route limit (the admin API's ``pools``)."""
        return {} if self._pools is None else dict(self._pools())

    def metrics_text(self) -> bytes:
        """Every metric in the Prometheus text format (the admin API's ``metrics``)."""
        return self._metrics.render()
