"""Shadowing as the proxy sees it: which routes mirror, tapping the response, handing off.

The proxy asks :meth:`Shadowing.begin` once per request. For a route with a
``shadow:`` block (and a buffered request body) it gets a :class:`Tap`: a ``send``
wrapper that passes every message to the client unchanged and keeps a copy of the
response, up to ``max_response_bytes``. After the response is complete the proxy
calls :meth:`Tap.finish`, which hands request copy and response to the
:class:`~strangler_proxy.mirror.MirrorEngine` (never awaited; a full queue drops).

    tap = shadowing.begin(target, method, path_qs, headers, body)
    status = await forward(..., send=tap.send if tap else send)
    if tap: tap.finish()

Configuration comes from the environment (``STRANGLER_SHADOW_*``), the rules from the
route table.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from strangler_proxy.compare import CompareRules
from strangler_proxy.exchange import CapturedRequest, CapturedResponse
from strangler_proxy.mirror import MirrorEngine, MirrorMetrics, ShadowRoute, Submitted
from strangler_proxy.noise import NoiseLearner
from strangler_proxy.shadow_store import DEFAULT_PREFIX, RedisShadowStore, ShadowResults

__all__ = ["ShadowSettings", "Shadowing", "Tap", "shadow_routes"]

log = logging.getLogger("strangler.shadow")

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class ShadowSettings:
    """Process-wide mirror settings (``STRANGLER_SHADOW_*``, ``STRANGLER_REDIS_URL``)."""

    queue_size: int = 1000
    concurrency: int = 4
    timeout: float = 5.0
    max_request_bytes: int = 64 * 1024
    max_response_bytes: int = 1024 * 1024
    redis_url: str | None = None
    prefix: str = DEFAULT_PREFIX

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ShadowSettings:
        env = os.environ if environ is None else environ

        def number(name: str, default: float) -> float:
            raw = env.get(f"STRANGLER_SHADOW_{name}")
            return float(raw) if raw else default

        return cls(
            queue_size=int(number("QUEUE", cls.queue_size)),
            concurrency=int(number("CONCURRENCY", cls.concurrency)),
            timeout=number("TIMEOUT", cls.timeout),
            max_request_bytes=int(number("MAX_REQUEST_BYTES", cls.max_request_bytes)),
            max_response_bytes=int(number("MAX_RESPONSE_BYTES", cls.max_response_bytes)),
            redis_url=env.get("STRANGLER_REDIS_URL") or None,
            prefix=env.get("STRANGLER_SHADOW_PREFIX", DEFAULT_PREFIX),
        )


def shadow_routes(table: Any) -> dict[int, ShadowRoute]:
    """``id(route) -> ShadowRoute`` for every route of a route table with a shadow block."""
    found: dict[int, ShadowRoute] = {}
    for _, context, route in table.located_routes():
        shadow = route.shadow
        if shadow is None or shadow.upstream not in table.upstreams:
            continue
        calibrate = getattr(shadow, "calibrate", None)
        found[id(route)] = ShadowRoute(
            name=route.name,
            shadow_url=table.upstreams[shadow.upstream].url.rstrip("/"),
            context=context,
            sample_rate=shadow.sample_rate,
            side_effect_free=shadow.side_effect_free,
            rules=CompareRules.coerce(shadow.compare),
            second_primary_url=(
                table.upstreams[calibrate].url.rstrip("/") if calibrate in table.upstreams else None
            ),
        )
    return found


def _text_headers(raw: Iterable[tuple[bytes | str, bytes | str]]) -> tuple[tuple[str, str], ...]:
    return tuple(
        (
            k.decode("latin-1") if isinstance(k, bytes) else k,
            v.decode("latin-1") if isinstance(v, bytes) else v,
        )
        for k, v in raw
    )


class Tap:
    """A ``send`` that forwards everything and keeps a bounded copy of the response."""

    __slots__ = ("_chunks", "_engine", "_headers", "_request", "_route", "_size", "_status", "send")

    def __init__(
        self,
        engine: MirrorEngine,
        route: ShadowRoute,
        request: CapturedRequest,
        send: Send,
        limit: int,
    ) -> None:
        self._engine, self._route, self._request = engine, route, request
        self._status = 0
        self._headers: Sequence[tuple[bytes, bytes]] = ()
        self._chunks: list[bytes] | None = []
        self._size = limit
        self.send = self._wrap(send)

    def _wrap(self, send: Send) -> Send:
        async def tapped(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.start":
                self._status, self._headers = message["status"], message.get("headers", ())
            elif message["type"] == "http.response.body" and self._chunks is not None:
                chunk = message.get("body", b"")
                self._size -= len(chunk)
                if self._size < 0:
                    self._chunks = None  # too large to compare: not mirrored
                else:
                    self._chunks.append(chunk)

        return tapped

    def finish(self) -> Submitted | None:
        """Hand the copy to the engine (None when the response was not captured whole)."""
        if self._chunks is None or not self._status:
            return None
        response = CapturedResponse(
            self._status, _text_headers(self._headers), b"".join(self._chunks)
        )
        return self._engine.submit(self._route, self._request, response)


class Shadowing:
    """The proxy's side of mirroring: route lookup, body size cap, taps, engine lifecycle."""

    def __init__(self, engine: MirrorEngine, settings: ShadowSettings | None = None) -> None:
        self.engine = engine
        self.settings = settings or ShadowSettings()
        self._routes: dict[int, ShadowRoute] = {}
        self._table: Any = None
        self.skipped_large = 0

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, registry: CollectorRegistry | None = None
    ) -> Shadowing:
        """An engine recording into Redis when ``STRANGLER_REDIS_URL`` is set.

        ``registry``: the proxy's Prometheus registry (the ``strangler_shadow_*`` series).
        """
        settings = ShadowSettings.from_env(environ)
        store: ShadowResults | None = None
        if settings.redis_url:
            store = RedisShadowStore.from_url(settings.redis_url, prefix=settings.prefix)
        engine = MirrorEngine(
            store=store,
            noise=NoiseLearner(),
            queue_size=settings.queue_size,
            concurrency=settings.concurrency,
            timeout=settings.timeout,
            metrics=MirrorMetrics(registry) if registry is not None else None,
        )
        return cls(engine, settings)

    def sync(self, table: Any) -> None:
        """Take the shadow blocks of a (re)loaded route table."""
        self._table = table  # keeps the route objects (and so their ids) alive
        self._routes = shadow_routes(table)

    @property
    def active(self) -> bool:
        return bool(self._routes)

    def begin(
        self,
        route: Any,
        method: str,
        target: str,
        headers: Iterable[tuple[bytes | str, bytes | str]],
        body: object,
        send: Send,
    ) -> Tap | None:
        """A tap when ``route`` mirrors and the body was buffered within the cap."""
        shadow = self._routes.get(id(route)) if route is not None else None
        if shadow is None:
            return None
        if body is not None and not isinstance(body, bytes):
            self.skipped_large += 1  # streamed body: no copy to send
            return None
        payload = body or b""
        if len(payload) > self.settings.max_request_bytes:
            self.skipped_large += 1
            return None
        self.engine.start()
        request = CapturedRequest(method, target, _text_headers(headers), payload)
        return Tap(self.engine, shadow, request, send, self.settings.max_response_bytes)

    async def close(self) -> None:
        await self.engine.close()
