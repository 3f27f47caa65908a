"""Forwarding to upstreams: keep-alive pools (:mod:`strangler_proxy.upstream._client`)
per upstream, one per endpoint.

An upstream with several endpoints (``urls:``, the replicas of one service) takes them
in turn, round-robin. A request that cannot connect to one (refused, connect timeout,
DNS: nothing of it was sent) goes to the next at once, each endpoint at most once, and
the one that failed is skipped for :data:`CONNECT_COOLDOWN` seconds unless every
endpoint is cooling down. Only when no endpoint could be reached does the request fail
with :class:`UpstreamConnectFailed` (a read may fall back; the upstream's one breaker
counts one failure). ``pool_size`` caps the connections to each endpoint.

Pool limits (:class:`PoolLimits`): a request waits at most ``pool_wait`` seconds for a
free connection, then gets :class:`UpstreamBusy` (503, and the upstream's breaker counts
a failure); a streamed upload that gives nothing for ``body_idle`` seconds is cut
(:class:`UploadStalled`, 408; its connection discarded; not the upstream's failure); and
one route may hold at most ``route_share`` of an upstream's connections in flight: beyond
that its requests get :class:`UpstreamBusy` at once, so a slow path (stalled uploads, say)
cannot starve the upstream's other routes.

The pools pass bytes through: no decompression, no cookies, no redirects. Upstream
errors become :mod:`strangler_proxy.edge.errors` at this boundary: connect failures
(:class:`UpstreamConnectFailed`, safe to fall back), timeouts, broken connections. A
response is streamed to the client unless it is small and of known length. The
token check's whoami call (:mod:`strangler_proxy.edge.auth`) uses an aiohttp session per
upstream, created on first use: it is cached and off the hot path.

    forwarder = Forwarder()
    forwarder.sync(table)           # pools and breakers for the table's upstreams
    status = await forwarder.exchange("catalog", outgoing, send)
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yarl

from migration_plans.core.http import SAFE_METHODS
from strangler_proxy.edge.errors import (
    UploadStalled,
    UpstreamBusy,
    UpstreamConnectFailed,
    UpstreamFailed,
    UpstreamTimeout,
)
from strangler_proxy.edge.headers import client_headers
from strangler_proxy.routetable.model import RouteTable, Upstream
from strangler_proxy.upstream._client import (
    BodyStalled,
    ClientLimits,
    ConnectFailed,
    Disconnected,
    PoolTimeout,
    ProtocolError,
    UpstreamClient,
    UpstreamResponse,
)
from strangler_proxy.upstream.breaker import CircuitBreaker, StateListener

log = logging.getLogger("strangler.proxy")

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_SKIP_AUTO = frozenset({"User-Agent", "Accept", "Accept-Encoding", "Content-Type"})

CONNECT_COOLDOWN = 1.0
"""Seconds an endpoint that could not be connected to is left out of the rotation."""


class StreamBroken(Exception):
    """The upstream failed after the response had started: the client connection is cut."""


@dataclass(frozen=True)
class PoolLimits:
    """How requests share an upstream's pool (see the module docstring); seconds."""

    pool_wait: float | None = None
    body_idle: float | None = None
    route_share: float = 1.0


@dataclass
class Outgoing:
    """One request as it goes upstream (path already normalised)."""

    method: str
    target: str  # path + "?" + query
    headers: list[tuple[str, str]]
    body: bytes | AsyncIterator[bytes] | None = None
    request_id: str = ""
    client_failure: Callable[[], Exception | None] = lambda: None
    route: str = ""
    """The route that sent it: its share of the upstream's pool is counted."""

    @property
    def replayable(self) -> bool:
        """True when sending it again cannot repeat a side effect or lose a body."""
        return self.method in SAFE_METHODS and not isinstance(self.body, AsyncIterator)


class Rotation:
    """Round-robin over ``size`` endpoints, skipping those that recently failed to connect.

    Not thread-safe (one event loop). Costs nothing beyond an index step while no
    endpoint is cooling down.

        rotation = Rotation(3)
        first = rotation.pick()
        ...connect failed: rotation.failed(first); then try rotation.after(first)
    """

    __slots__ = ("_cooling_until", "_next", "_until", "clock", "size")

    def __init__(self, size: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.clock = clock
        self._next = 0
        self._until = [0.0] * size  # per endpoint: skipped until then
        self._cooling_until = 0.0  # the latest of those; 0.0 when none is cooling

    def pick(self) -> int:
        """The endpoint for the next request: the next in turn that is not cooling down."""
        index = self._next
        if self._cooling_until:
            index = self._warm_from(index)
        self._next = index + 1 if index + 1 < self.size else 0
        return index

    def after(self, first: int) -> list[int]:
        """The endpoints to try once ``first`` failed to connect, each once: in turn from
        ``first``, those not cooling down before those that are."""
        ring = [(first + step) % self.size for step in range(1, self.size)]
        now = self.clock()
        return sorted(ring, key=lambda index: self._until[index] > now)

    def failed(self, index: int) -> None:
        """``index`` could not be connected to: skip it for :data:`CONNECT_COOLDOWN`."""
        until = self.clock() + CONNECT_COOLDOWN
        self._until[index] = until
        self._cooling_until = max(self._cooling_until, until)

    def answered(self, index: int) -> None:
        """``index`` was connected to: it takes its turns again."""
        if self._cooling_until:
            self._until[index] = 0.0

    def cooling(self) -> list[int]:
        """The endpoints skipped now."""
        now = self.clock()
        return [index for index, until in enumerate(self._until) if until > now]

    def _warm_from(self, index: int) -> int:
        now = self.clock()
        if now >= self._cooling_until:
            self._cooling_until = 0.0
            return index
        for step in range(self.size):
            candidate = (index + step) % self.size
            if self._until[candidate] <= now:
                return candidate
        return index  # every endpoint is cooling down: plain round-robin


class UpstreamPool:
    """An upstream's settings, a forwarding pool per endpoint, the rotation over them,
    and (for whoami) an aiohttp session."""

    def __init__(self, name: str, upstream: Upstream, limits: PoolLimits | None = None) -> None:
        self.name = name
        self.upstream = upstream
        self.limits = limits or PoolLimits()
        self.rotation = Rotation(len(upstream.endpoints))
        self.in_flight: dict[str, int] = {}
        """Requests in flight per route (only while ``route_share`` < 1)."""
        self._clients: list[UpstreamClient] | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def route_limit(self) -> int | None:
        """Requests one route may have in flight here (None: no share is enforced)."""
        share = self.limits.route_share
        if share >= 1.0:
            return None
        return max(1, int(share * self.upstream.pool_size * len(self.upstream.endpoints)))

    def enter(self, route: str) -> None:
        """Count a request of ``route``; :class:`UpstreamBusy` when the route's share is used."""
        limit = self.route_limit
        if limit is None:
            return
        busy = self.in_flight.get(route, 0)
        if busy >= limit:
            raise UpstreamBusy(
                f"route {route!r} already has {busy} requests in flight to upstream "
                f"{self.name!r} (its share of the pool); retry shortly"
            )
        self.in_flight[route] = busy + 1

    def snapshot(self) -> dict[str, object]:
        """Connections busy, idle and waited for, and requests in flight per route (the
        admin API's ``pools``)."""
        clients = self._clients or []
        open_ = sum(client.open_connections for client in clients)
        idle = sum(client.idle_connections for client in clients)
        return {
            "pool_size": self.upstream.pool_size * len(self.upstream.endpoints),
            "busy": open_ - idle,
            "idle": idle,
            "waiting": sum(client.waiting for client in clients),
            "route_limit": self.route_limit,
            "in_flight": dict(self.in_flight),
        }

    def leave(self, route: str) -> None:
        busy = self.in_flight.get(route, 0) - 1
        if busy > 0:
            self.in_flight[route] = busy
        else:
            self.in_flight.pop(route, None)

    @property
    def clients(self) -> list[UpstreamClient]:
        """One forwarding pool per endpoint (in ``endpoints`` order), created in the
        running loop on first use."""
        clients = self._clients
        if clients is None:
            clients = self._clients = [self._client(url) for url in self.upstream.endpoints]
        return clients

    def _client(self, url: str) -> UpstreamClient:
        parts = urlsplit(url)
        https = parts.scheme == "https"
        timeouts = self.upstream.timeouts
        return UpstreamClient(
            parts.hostname or "127.0.0.1",
            parts.port or (443 if https else 80),
            ClientLimits(
                connect=timeouts.connect,
                read=timeouts.read,
                pool_size=self.upstream.pool_size,
                pool_wait=self.limits.pool_wait,
                body_idle=self.limits.body_idle,
            ),
            ssl=ssl.create_default_context() if https else None,
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        """One aiohttp session for every endpoint (its connector pools per host)."""
        if self._session is None or self._session.closed:
            timeouts = self.upstream.timeouts
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.upstream.pool_size * len(self.upstream.endpoints),
                    limit_per_host=self.upstream.pool_size,
                    keepalive_timeout=30,
                    ttl_dns_cache=300,
                ),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=timeouts.connect, sock_read=timeouts.read
                ),
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                skip_auto_headers=_SKIP_AUTO,
            )
        return self._session

    def url(self, target: str, index: int = 0) -> yarl.URL:
        """``target`` (path + query) on endpoint ``index``."""
        return yarl.URL(self.upstream.endpoints[index] + target, encoded=True)

    async def close(self) -> None:
        if self._clients is not None:
            await asyncio.gather(*(client.close() for client in self._clients))
        if self._session is not None:
            await self._session.close()


class Forwarder:
    """Pools and breakers for every upstream of the serving table."""

    def __init__(
        self,
        *,
        buffer_bytes: int = 64 * 1024,
        drain_seconds: float = 30.0,
        limits: PoolLimits | None = None,
        on_breaker_change: StateListener | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.buffer_bytes = buffer_bytes
        self.drain_seconds = drain_seconds
        self.limits = limits or PoolLimits()
        self.on_breaker_change = on_breaker_change
        self.clock = clock
        self.pools: dict[str, UpstreamPool] = {}
        self.breakers: dict[str, CircuitBreaker] = {}

    def sync(self, table: RouteTable) -> None:
        """Pools and breakers for ``table``; unchanged upstreams keep theirs."""
        old = self.pools
        self.pools = {}
        for name, upstream in table.upstreams.items():
            pool = old.pop(name, None)
            if pool is None or _pool_settings(pool.upstream) != _pool_settings(upstream):
                if pool is not None:
                    self._retire(pool)
                pool = UpstreamPool(name, upstream, self.limits)
            pool.upstream = upstream
            self.pools[name] = pool
            self._breaker(name, upstream)
        for pool in old.values():
            self._retire(pool)
        for name in set(self.breakers) - set(self.pools):
            del self.breakers[name]

    def _breaker(self, name: str, upstream: Upstream) -> None:
        breaker = self.breakers.get(name)
        if breaker is not None:
            breaker.configure(upstream.breaker)
            return
        kwargs: dict[str, Any] = {"on_change": self.on_breaker_change}
        if self.clock is not None:
            kwargs["clock"] = self.clock
        self.breakers[name] = CircuitBreaker(name, upstream.breaker, **kwargs)

    def _retire(self, pool: UpstreamPool) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        loop.call_later(self.drain_seconds, lambda: loop.create_task(pool.close()))

    async def close(self) -> None:
        await asyncio.gather(*(pool.close() for pool in self.pools.values()))

    async def exchange(self, name: str, outgoing: Outgoing, send: Send) -> int:
        """Send ``outgoing`` to upstream ``name`` and stream the answer; the status."""
        pool, breaker = self.pools.get(name), self.breakers.get(name)
        if pool is None or breaker is None:  # removed by a reload while this request ran
            raise UpstreamFailed(f"upstream {name!r} is no longer configured")
        pool.enter(outgoing.route)
        try:
            return await self._exchange(pool, breaker, outgoing, send)
        finally:
            pool.leave(outgoing.route)

    async def _exchange(
        self, pool: UpstreamPool, breaker: CircuitBreaker, outgoing: Outgoing, send: Send
    ) -> int:
        name = pool.name
        try:
            response = await self._request(pool, outgoing)
        except Exception as exc:
            failure = outgoing.client_failure()
            if failure is not None:
                raise failure from exc
            if isinstance(exc, BodyStalled):  # the client's silence, not the upstream's fault
                raise UploadStalled(f"{exc} (upstream {name!r})") from exc
            breaker.record(ok=False)
            raise translate(exc, name) from exc
        breaker.record(ok=response.status not in pool.upstream.breaker.failure_statuses)
        try:
            await self._relay(name, response, outgoing, send)
        finally:
            response.release()
        return response.status

    async def _request(self, pool: UpstreamPool, outgoing: Outgoing) -> UpstreamResponse:
        clients = pool.clients
        if len(clients) == 1:
            return await _attempt(clients[0], outgoing)
        rotation = pool.rotation
        first = rotation.pick()
        try:
            response = await _attempt(clients[first], outgoing)
        except ConnectFailed as exc:
            rotation.failed(first)
            return await self._failover(pool, outgoing, first, exc)
        rotation.answered(first)
        return response

    async def _failover(
        self, pool: UpstreamPool, outgoing: Outgoing, first: int, error: ConnectFailed
    ) -> UpstreamResponse:
        """Nothing of ``outgoing`` reached endpoint ``first``: try the others, each once."""
        rotation = pool.rotation
        for index in rotation.after(first):
            try:
                response = await _attempt(pool.clients[index], outgoing)
            except ConnectFailed as exc:
                rotation.failed(index)
                error = exc
                continue
            rotation.answered(index)
            return response
        raise ConnectFailed(
            f"none of the {rotation.size} endpoints of {pool.name!r} could be reached: {error}"
        ) from error

    async def _relay(
        self, name: str, response: UpstreamResponse, outgoing: Outgoing, send: Send
    ) -> None:
        headers = client_headers(response.raw_headers, outgoing.request_id)
        length = response.content_length
        if length is not None and length <= self.buffer_bytes:
            try:
                body = await response.read()
            except Disconnected as exc:
                if not outgoing.replayable:
                    raise translate(exc, name) from exc
                # Nothing of the answer reached the client yet and the request is safe
                # to send again: an upstream that died mid-answer is as good as
                # unreachable (the caller falls back where the route allows it).
                raise UpstreamConnectFailed(
                    f"upstream {name!r} broke off its answer before any of it was sent"
                ) from exc
            except Exception as exc:
                raise translate(exc, name) from exc
            await send(
                {"type": "http.response.start", "status": response.status, "headers": headers}
            )
            await send({"type": "http.response.body", "body": body})
            return
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        try:
            async for chunk in response.chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (TimeoutError, OSError, ProtocolError) as exc:
            raise StreamBroken(f"upstream broke the response stream: {exc!r}") from exc
        await send({"type": "http.response.body", "body": b""})


async def _attempt(client: UpstreamClient, outgoing: Outgoing) -> UpstreamResponse:
    """Send ``outgoing`` to one endpoint; :class:`ConnectFailed` when nothing reached it."""
    # A pooled connection the endpoint closed (idle timeout, restart, crash) fails on
    # use before any byte of a response: a replayable request gets one more try on a
    # fresh connection, which either works or fails to connect (and may go to another
    # endpoint, or fall back).
    attempts = 2 if outgoing.replayable else 1
    for attempt in range(attempts):
        try:
            return await client.request(
                outgoing.method,
                outgoing.target,
                outgoing.headers,
                outgoing.body,
                fresh=attempt > 0,
            )
        except Disconnected as exc:
            if not exc.before_response or not outgoing.replayable:
                raise
            if attempt + 1 == attempts:
                # A dying endpoint still accepts connections for a moment and then
                # resets them: nothing answered a safe request, as if unreachable.
                raise ConnectFailed(
                    f"the upstream closed {attempts} connections without answering"
                ) from exc
    raise AssertionError("unreachable")


def _pool_settings(upstream: Upstream) -> tuple[object, ...]:
    return (upstream.endpoints, upstream.timeouts, upstream.pool_size)


def translate(exc: BaseException, name: str) -> Exception:
    """A client/asyncio error as the proxy error the client gets."""
    if isinstance(exc, ConnectFailed):
        return UpstreamConnectFailed(f"could not connect to upstream {name!r}")
    if isinstance(exc, PoolTimeout):
        return UpstreamBusy(f"upstream {name!r} is busy: {exc}")
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(f"upstream {name!r} did not answer in time")
    if isinstance(exc, OSError | ProtocolError):
        return UpstreamFailed(f"upstream {name!r} failed: {type(exc).__name__}")
    return exc if isinstance(exc, Exception) else UpstreamFailed()
