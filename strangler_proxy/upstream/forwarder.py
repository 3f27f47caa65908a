"""Forwarding to upstreams: one keep-alive pool (:mod:`strangler_proxy.upstream._client`)
per upstream.

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
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yarl

from migration_plans.core.http import SAFE_METHODS
from strangler_proxy.edge.errors import (
    UpstreamConnectFailed,
    UpstreamFailed,
    UpstreamTimeout,
)
from strangler_proxy.edge.headers import client_headers
from strangler_proxy.routetable.model import RouteTable, Upstream
from strangler_proxy.upstream._client import (
    ClientLimits,
    ConnectFailed,
    Disconnected,
    ProtocolError,
    UpstreamClient,
    UpstreamResponse,
)
from strangler_proxy.upstream.breaker import CircuitBreaker, StateListener

log = logging.getLogger("strangler.proxy")

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_SKIP_AUTO = frozenset({"User-Agent", "Accept", "Accept-Encoding", "Content-Type"})


class StreamBroken(Exception):
    """The upstream failed after the response had started: the client connection is cut."""


@dataclass
class Outgoing:
    """One request as it goes upstream (path already normalised)."""

    method: str
    target: str  # path + "?" + query
    headers: list[tuple[str, str]]
    body: bytes | AsyncIterator[bytes] | None = None
    request_id: str = ""
    client_failure: Callable[[], Exception | None] = lambda: None

    @property
    def replayable(self) -> bool:
        """True when sending it again cannot repeat a side effect or lose a body."""
        return self.method in SAFE_METHODS and not isinstance(self.body, AsyncIterator)


class UpstreamPool:
    """An upstream's settings, its forwarding pool and (for whoami) an aiohttp session."""

    def __init__(self, name: str, upstream: Upstream) -> None:
        self.name = name
        self.upstream = upstream
        self._client: UpstreamClient | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def client(self) -> UpstreamClient:
        """The forwarding pool, created in the running loop on first use."""
        if self._client is None:
            parts = urlsplit(self.upstream.url)
            https = parts.scheme == "https"
            timeouts = self.upstream.timeouts
            self._client = UpstreamClient(
                parts.hostname or "127.0.0.1",
                parts.port or (443 if https else 80),
                ClientLimits(
                    connect=timeouts.connect, read=timeouts.read, pool_size=self.upstream.pool_size
                ),
                ssl=ssl.create_default_context() if https else None,
            )
        return self._client

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeouts = self.upstream.timeouts
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.upstream.pool_size, keepalive_timeout=30, ttl_dns_cache=300
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

    def url(self, target: str) -> yarl.URL:
        return yarl.URL(self.upstream.base_url + target, encoded=True)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._session is not None:
            await self._session.close()


class Forwarder:
    """Pools and breakers for every upstream of the serving table."""

    def __init__(
        self,
        *,
        buffer_bytes: int = 64 * 1024,
        drain_seconds: float = 30.0,
        on_breaker_change: StateListener | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.buffer_bytes = buffer_bytes
        self.drain_seconds = drain_seconds
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
                pool = UpstreamPool(name, upstream)
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
        try:
            response = await self._request(pool, outgoing)
        except Exception as exc:
            failure = outgoing.client_failure()
            if failure is not None:
                raise failure from exc
            breaker.record(ok=False)
            raise translate(exc, name) from exc
        breaker.record(ok=response.status not in pool.upstream.breaker.failure_statuses)
        try:
            await self._relay(name, response, outgoing.request_id, send)
        finally:
            response.release()
        return response.status

    async def _request(self, pool: UpstreamPool, outgoing: Outgoing) -> UpstreamResponse:
        # A pooled connection the upstream closed (idle timeout, restart, crash) fails
        # on use before any byte of a response: a replayable request gets one more try
        # on a fresh connection, which either works or fails to connect (and may fall
        # back).
        attempts = 2 if outgoing.replayable else 1
        for attempt in range(attempts):
            try:
                return await pool.client.request(
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
                    # A dying upstream still accepts connections for a moment and then
                    # resets them: nothing answered a safe request, as if unreachable.
                    raise ConnectFailed(
                        f"the upstream closed {attempts} connections without answering"
                    ) from exc
        raise AssertionError("unreachable")

    async def _relay(
        self, name: str, response: UpstreamResponse, request_id: str, send: Send
    ) -> None:
        headers = client_headers(response.raw_headers, request_id)
        length = response.content_length
        if length is not None and length <= self.buffer_bytes:
            try:
                body = await response.read()
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


def _pool_settings(upstream: Upstream) -> tuple[object, ...]:
    return (upstream.url, upstream.timeouts, upstream.pool_size)


def translate(exc: BaseException, name: str) -> Exception:
    """A client/asyncio error as the proxy error the client gets."""
    if isinstance(exc, ConnectFailed):
        return UpstreamConnectFailed(f"could not connect to upstream {name!r}")
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(f"upstream {name!r} did not answer in time")
    if isinstance(exc, OSError | ProtocolError):
        return UpstreamFailed(f"upstream {name!r} failed: {type(exc).__name__}")
    return exc if isinstance(exc, Exception) else UpstreamFailed()
