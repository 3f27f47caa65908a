"""The proxy as a plain ASGI app: normalise, match, authenticate, forward, log.

    proxy = StranglerProxy(ProxyConfig(routes=Path("routes.yaml")))
    uvicorn.run(proxy, loop="uvloop", http="httptools")

Each request captures the table serving when it arrives; a reload swaps the table
for the requests after it. A read whose upstream is down (breaker open, connect
refused) goes to the fallback upstream when its route allows it. While the control
plane fences a context's writes (:mod:`strangler_proxy.live`), its unsafe requests wait
before their body is read, then go where the table serving by then sends them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from migration_plans.core.http import SAFE_METHODS, host_allowed
from migration_plans.core.identity import IDENTITY_HEADER, Identity
from migration_plans.core.yamlfile import ConfigError, ConfigIssue
from strangler_proxy.admin import Admin
from strangler_proxy.config import ProxyConfig
from strangler_proxy.edge import (
    BreakerOpen,
    ClientGone,
    DisallowedHost,
    ProxyError,
    RequestBody,
    TokenAuth,
    UpstreamConnectFailed,
    UpstreamFailed,
    check_singletons,
    content_length,
    request_id_from,
    upstream_headers,
)
from strangler_proxy.fence import WriteFence
from strangler_proxy.introspection import AdminAuth, AdminMount, ProxyIntrospection
from strangler_proxy.live import LivePhase
from strangler_proxy.metrics import ProxyMetrics
from strangler_proxy.routetable import (
    LoadedTable,
    PhaseRules,
    ReloadError,
    TableHolder,
    Upstream,
    load_table,
)
from strangler_proxy.routing import Target, normalize_path
from strangler_proxy.shadow import Shadowing
from strangler_proxy.throttling import AuthThrottle
from strangler_proxy.upstream import Forwarder, Outgoing, PoolLimits, StreamBroken

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

access_log = logging.getLogger("strangler.proxy.access")
log = logging.getLogger("strangler.proxy")


@dataclass
class Exchange:
    """What the access log and the metrics say about one request."""

    method: str
    path: str
    request_id: str
    route: str = "-"
    upstream: str = "-"
    status: int = 0
    code: str = ""


class StranglerProxy:
    """The routing proxy (ASGI)."""

    def __init__(
        self,
        config: ProxyConfig,
        *,
        holder: TableHolder | None = None,
        phase_rules: PhaseRules | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] | None = None,
        admin_mounts: Mapping[str, AdminMount] | None = None,
    ) -> None:
        self.config = config
        self.environ = os.environ if environ is None else environ
        self.metrics = ProxyMetrics()
        self.forwarder = Forwarder(
            buffer_bytes=config.buffer_bytes,
            drain_seconds=config.drain_seconds,
            limits=PoolLimits(
                pool_wait=config.upstream_pool_wait_seconds,
                body_idle=config.upstream_body_idle_seconds,
                route_share=config.upstream_route_share,
            ),
            on_breaker_change=self._breaker_changed,
            clock=clock,
        )
        self.holder = holder or TableHolder(
            load_table(config.routes, phase_rules, max_bytes=config.max_table_bytes)
        )
        self.holder.max_bytes = config.max_table_bytes
        self.holder.phase_rules = self.holder.phase_rules or phase_rules
        self.holder.check = self._check_table
        problems = self._check_table(self.holder.current)
        if problems:
            raise ConfigError(
                [ConfigIssue(self.holder.current.source, None, "", p) for p in problems]
            )
        self.fence = WriteFence(capacity=config.fence_queue, metrics=self.metrics)
        self.live = LivePhase(
            config.control_db_url if config.live_phase else None,
            holder=self.holder,
            fence=self.fence,
            metrics=self.metrics,
            address=config.advertise_url,
            on_lift=self._fence_lifted,
        )
        self.holder.listeners.append(self._table_event)
        self.auth: TokenAuth | None = None
        self.shadowing = Shadowing.from_env(self.environ, registry=self.metrics.registry)
        self._activate(self.holder.current)
        self.metrics.reload_failing.set_function(lambda: float(self.holder.last_error is not None))
        self.admin = Admin(
            self._introspection(), reload=self.holder.reload_async, mounts=admin_mounts
        )
        self.handle_sighup = False
        self._tasks: list[asyncio.Task[None]] = []
        self._reloads: set[asyncio.Task[bool]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.shadowing.in_flight += 1  # the shedder sheds only while requests queue
            try:
                await self._http(scope, receive, send)
            finally:
                self.shadowing.in_flight -= 1
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    # -- table lifecycle ------------------------------------------------------------

    def _check_table(self, loaded: LoadedTable) -> list[str]:
        auth = loaded.table.auth
        if auth is not None and not self.environ.get(auth.identity_key_env):
            return [
                f"auth.identity_key_env: environment variable {auth.identity_key_env} is not set"
            ]
        return []

    def _activate(self, loaded: LoadedTable) -> None:
        self.forwarder.sync(loaded.table)
        self.shadowing.sync(loaded.table)
        settings = loaded.table.auth
        if settings is None:
            self.auth = None
        elif self.auth is None or self.auth.settings != settings:
            key = self.environ[settings.identity_key_env].encode()
            self.auth = TokenAuth(settings, key=key)
        self.metrics.table_loaded(loaded.version, loaded.hash)

    def _table_event(self, loaded: LoadedTable | None, error: ReloadError | None) -> None:
        if loaded is not None:
            self._activate(loaded)
            self.metrics.reloads.labels("ok").inc()
        if error is not None:
            self.metrics.reloads.labels("failed").inc()
        self.live.report()  # the new table's hash, a NACK, or the NACK cleared

    def _introspection(self) -> ProxyIntrospection:
        """What the admin API and its mounted apps read of this proxy."""
        token = self.config.admin_token
        return ProxyIntrospection(
            holder=self.holder,
            metrics=self.metrics,
            breakers=lambda: self.forwarder.breakers,
            pools=lambda: {name: pool.snapshot() for name, pool in self.forwarder.pools.items()},
            admin_prefix=self.config.admin_prefix,
            admin_token=token.get_secret_value().encode() if token is not None else None,
            admin_auth=self._admin_auth(),
            live=self.live.describe,
        )

    def _admin_auth(self) -> AdminAuth:
        config = self.config
        throttle = AuthThrottle(
            per_minute=config.auth_failures_per_minute,
            burst=config.auth_failures_burst,
            max_clients=config.auth_throttle_clients,
        )
        return AdminAuth(
            throttle,
            session_idle_seconds=config.dashboard_session_idle_seconds,
            session_max_seconds=config.dashboard_session_max_seconds,
            secure_cookie=config.dashboard_secure_cookie,
        )

    def _fence_lifted(self, context: str) -> None:
        """Close the breakers of the upstreams ``context`` routes to (its owner just acknowledged)."""
        routes = self.holder.current.table.contexts.get(context)
        if routes is None:
            return
        names: set[str] = set()
        for route in routes.routes:
            if route.upstream is not None:
                names.add(route.upstream)
            if route.canary is not None:
                names.update(route.canary.split)
        for name in names:
            breaker = self.forwarder.breakers.get(name)
            if breaker is not None:
                breaker.reset()

    def _breaker_changed(self, upstream: str, state: Any) -> None:
        self.metrics.breaker_changed(upstream, state)
        log.warning("breaker %s is %s", upstream, state, extra={"event": "breaker"})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def start(self) -> None:
        """Start this worker's own resources (ASGI lifespan startup, in each worker process).

        Watch the route file, reload on SIGHUP when asked to, start the flow writer when a
        route records, follow the live phase and register as a replica (unless
        ``live_phase`` is off). Nothing thread- or loop-bound starts in ``__init__``: under
        ``--workers N`` the proxy is built once and forked.
        """
        self.shadowing.start()
        self.live.start()
        watch = self.holder.watch(self.config.reload_interval)
        self._tasks.append(asyncio.get_running_loop().create_task(watch))
        if self.handle_sighup:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._reload_soon)

    def _reload_soon(self) -> None:
        """SIGHUP: reload the route file, parsed off the event loop."""
        task = asyncio.get_running_loop().create_task(self.holder.reload_async())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def stop(self) -> None:
        """Stop what :meth:`start` started; held writes are refused (503, retry)."""
        await self.live.stop()
        for task in self._tasks:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        if self.handle_sighup:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await self.shadowing.close()
        await self.forwarder.close()

    # -- requests -------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = dict(scope["headers"])
        request_id = request_id_from(headers)
        exchange = Exchange(scope["method"], scope.get("path", ""), request_id)
        try:
            exchange.status = await self._handle(scope, receive, send, headers, exchange)
        except ProxyError as exc:
            exchange.status, exchange.code = exc.status_code, exc.code
            await _send_error(send, exc, request_id)
        except StreamBroken as exc:
            exchange.status, exchange.code = 502, "stream_broken"
            log.warning("%s", exc, extra={"request_id": request_id})
        except ClientGone:
            exchange.status, exchange.code = 499, "client_gone"
        except Exception:
            exchange.status, exchange.code = 500, "proxy_error"
            log.exception("proxy failure", extra={"request_id": request_id})
            raise  # uvicorn answers 500 or closes a started response
        finally:
            self._record(exchange, time.perf_counter() - started)

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes],
        exchange: Exchange,
    ) -> int:
        config = self.config
        framing = content_length(scope["headers"], config.max_header_bytes)
        check_singletons(scope["headers"], scope.get("http_version", "1.1"))
        # Some servers (and httpx's ASGITransport) leave the query on raw_path.
        raw_path = (scope.get("raw_path") or scope["path"].encode("utf-8")).split(b"?", 1)[0]
        path = normalize_path(
            raw_path,
            slashes=config.slashes,
            max_length=config.max_path_length,
            reject_double_encoded=config.reject_double_encoded,
        )
        exchange.path = path
        if path.startswith(config.admin_prefix):
            exchange.route = "admin"
            return await self.admin.serve(scope, receive, send, path, exchange.request_id)
        client = scope["client"][0] if scope.get("client") else ""
        method = scope["method"]
        target = self.holder.current.router.resolve(method, path, headers, client)
        context = target.context
        if context is None or method in SAFE_METHODS:
            return await self._forward(target, scope, receive, send, headers, exchange, framing)
        if context in self.fence.gates:  # the one check a write pays when nothing is fenced
            exchange.route, exchange.upstream = target.route_name, target.upstream
            target = await self._through_fence(target, method, path, headers, client)
            context = target.context
            if context is None:
                return await self._forward(target, scope, receive, send, headers, exchange, framing)
        self.fence.enter(context)  # no await since the fence check: counted before any fence
        try:
            return await self._forward(target, scope, receive, send, headers, exchange, framing)
        finally:
            self.fence.leave(context)

    async def _through_fence(
        self, target: Target, method: str, path: str, headers: dict[bytes, bytes], client: str
    ) -> Target:
        """Hold a write while its context is fenced; its target on the table serving after."""
        while target.context is not None:
            gate = self.fence.gates.get(target.context)
            if gate is None:
                break
            await self.fence.hold(gate)
            target = self.holder.current.router.resolve(method, path, headers, client)
        return target

    async def _forward(
        self,
        target: Target,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes],
        exchange: Exchange,
        framing: tuple[int | None, bool],
    ) -> int:
        """Authenticate, read the body and send the request to ``target``."""
        config = self.config
        exchange.route, exchange.upstream = target.route_name, target.upstream
        if target.canary:
            self.metrics.canary.labels(target.route_name, target.upstream).inc()
        auth = self.auth
        identity = await auth.caller(headers, self.forwarder) if auth else None
        declared, chunked = framing
        body = RequestBody(receive, declared=declared, chunked=chunked, limit=config.max_body_bytes)
        await body.prefetch(config.buffer_bytes)  # a small chunked body is whole, framing checked
        payload = await body.read() if body.small(config.buffer_bytes) else body.stream()
        query = scope.get("query_string", b"")
        target_path = exchange.path + ("?" + query.decode("latin-1") if query else "")
        request = _Request(scope, headers, target_path, identity, auth)
        return await self._dispatch(
            target, request, None if body.empty else payload, body, send, exchange
        )

    async def _dispatch(
        self,
        target: Target,
        request: _Request,
        payload: Any,
        body: RequestBody,
        send: Send,
        exchange: Exchange,
    ) -> int:
        def outgoing(upstream: str, host_of: str | None = None) -> Outgoing:
            headers = self._upstream_headers(request, upstream, exchange.request_id, host_of)
            return Outgoing(
                request.method,
                request.target,
                headers,
                payload,
                exchange.request_id,
                lambda: body.failure,
                target.route_name,
            )

        breaker = self.forwarder.breakers.get(target.upstream)
        if breaker is not None and not breaker.allow():
            if target.fallback is None:
                raise BreakerOpen(f"upstream {target.upstream!r} is unavailable (breaker open)")
            return await self._fall_back(target, outgoing, send, exchange)
        tap = None
        if self.shadowing.active:
            tap = self.shadowing.begin(
                target.route,
                request.method,
                request.target,
                payload,
                send,
                # a copy carries the primary's Host: the primary built its links from it
                lambda upstream: outgoing(upstream or target.upstream, target.upstream).headers,
            )
        try:
            status = await self.forwarder.exchange(
                target.upstream, outgoing(target.upstream), tap.send if tap else send
            )
        except UpstreamConnectFailed:
            if target.fallback is None or (body.started and not isinstance(payload, bytes)):
                raise
            return await self._fall_back(target, outgoing, send, exchange)
        if tap is not None:
            tap.finish()  # the mirror compares off the request path
        return status

    async def _fall_back(
        self, target: Target, outgoing: Callable[[str], Outgoing], send: Send, exchange: Exchange
    ) -> int:
        assert target.fallback is not None
        self.metrics.fallbacks.labels(target.route_name, target.upstream, target.fallback).inc()
        exchange.upstream = target.fallback
        return await self.forwarder.exchange(target.fallback, outgoing(target.fallback), send)

    def _upstream_headers(
        self, request: _Request, name: str, request_id: str, host_of: str | None = None
    ) -> list[tuple[str, str]]:
        """Headers for upstream ``name``, with the Host chosen for ``host_of`` (default
        ``name``; a shadow copy sends the primary's)."""
        upstream = self._upstream(name)
        host = self._host_for(request, host_of or name)
        extra = (
            [(IDENTITY_HEADER, request.signed_for(upstream.audience or name))]
            if request.identity is not None and upstream.identity
            else []
        )
        return upstream_headers(
            request.raw_headers,
            client_host=request.client,
            scheme=request.scheme,
            host=host,
            client_host_header=request.host,
            request_id=request_id,
            extra=extra,
        )

    def _upstream(self, name: str) -> Upstream:
        pool = self.forwarder.pools.get(name)
        if pool is None:  # removed by a reload while this request ran
            raise UpstreamFailed(f"upstream {name!r} is no longer configured")
        return pool.upstream

    def _host_for(self, request: _Request, name: str) -> str:
        """The Host upstream ``name`` gets (its ``host_header``); :class:`DisallowedHost`."""
        upstream = self._upstream(name)
        netloc = urlsplit(upstream.base_url).netloc  # the first endpoint's
        if upstream.host_header == "upstream":
            return netloc
        if upstream.host_header != "client":
            return upstream.host_header
        if request.host and not host_allowed(request.host, self.holder.current.table.allowed_hosts):
            raise DisallowedHost(
                f"Host {request.host!r} is not in the route table's allowed_hosts "
                f"(upstream {name!r} has host_header: client)"
            )
        return request.host or netloc

    def _record(self, exchange: Exchange, seconds: float) -> None:
        route, upstream = exchange.route, exchange.upstream
        self.metrics.observe(route, upstream, exchange.method, exchange.status, seconds)
        if exchange.code:
            self.metrics.errors.labels(route, upstream, exchange.code).inc()
        if self.config.access_log and access_log.isEnabledFor(logging.INFO):
            access_log.info(
                json.dumps(
                    {
                        "ts": round(time.time(), 3),
                        "request_id": exchange.request_id,
                        "method": exchange.method,
                        "path": exchange.path,
                        "route": route,
                        "upstream": upstream,
                        "status": exchange.status,
                        "code": exchange.code or None,
                        "duration_ms": round(seconds * 1000, 2),
                    },
                    separators=(",", ":"),
                )
            )


class _Request:
    """The parts of the client's request every upstream attempt needs."""

    __slots__ = (
        "auth",
        "client",
        "host",
        "identity",
        "method",
        "raw_headers",
        "scheme",
        "target",
    )

    def __init__(
        self,
        scope: Scope,
        headers: dict[bytes, bytes],
        target: str,
        identity: Identity | None,
        auth: TokenAuth | None,
    ) -> None:
        self.method: str = scope["method"]
        self.target = target
        self.identity = identity
        self.auth = auth
        self.raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        self.client: str = scope["client"][0] if scope.get("client") else ""
        self.scheme: str = scope.get("scheme", "http")
        self.host = headers.get(b"host", b"").decode("latin-1")

    def signed_for(self, audience: str) -> str:
        """The caller's identity header for one upstream (signed per attempt: the audience
        of a fallback or a shadow differs)."""
        assert self.identity is not None and self.auth is not None
        return self.auth.header_for(self.identity, audience)


async def _send_error(send: Send, exc: ProxyError, request_id: str) -> None:
    body = exc.render(request_id)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
        *exc.headers,
    ]
    if exc.status_code in (400, 408, 413, 414, 431):
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
