"""Shadowing as the proxy sees it: which routes mirror, tapping the response, handing off.

The proxy asks :meth:`Shadowing.begin` once per request. For a route with a
``shadow:`` block (and a buffered request body) it gets a :class:`Tap`: a ``send``
wrapper that passes every message to the client unchanged and keeps a copy of the
response, up to ``max_response_bytes``. After the response is complete the proxy
calls :meth:`Tap.finish`, which hands request copy and response to the mirror
(never awaited; a full queue drops). By default the mirror is a sidecar process at a
lower CPU priority (:class:`~strangler_proxy.shadow._sidecar_client.MirrorProcess` running the
:class:`~strangler_proxy.shadow.engine.MirrorEngine`), so mirroring and comparing never
take the proxy's event loop; ``STRANGLER_SHADOW_MODE=inline`` runs the engine in
the proxy's loop instead.

    tap = shadowing.begin(route, method, path_qs, body, send, headers_for_upstream)
    status = await forward(..., send=tap.send if tap else send)
    if tap: tap.finish()

While the proxy's event loop is saturated (busy with primary traffic, or waiting for a
core) the
adaptive shedder (:mod:`strangler_proxy.shadow._shedding`) keeps back a growing share
of the copies the route's sample rate admitted, down to none, and lets them through
again when the loop has room; each one kept back is counted as ``shed``.

A route with ``record: {sample_rate: 0.01}`` also has a sample of its exchanges
written (redacted) to a mitmproxy flow file by :class:`~strangler_proxy.shadow._recorder.FlowRecorder`.

Configuration comes from the environment (``STRANGLER_SHADOW_*``), the rules from the
route table.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from strangler_proxy.shadow._captures import CaptureError
from strangler_proxy.shadow._compare import CompareRules
from strangler_proxy.shadow._recorder import FlowRecorder
from strangler_proxy.shadow._shedding import LoopLoad, ShedController
from strangler_proxy.shadow._sidecar_client import MirrorProcess
from strangler_proxy.shadow.backend import store_url
from strangler_proxy.shadow.engine import (
    Mirror,
    MirrorEngine,
    MirrorMetrics,
    ShadowRoute,
    Submitted,
)
from strangler_proxy.shadow.exchange import CapturedRequest, CapturedResponse
from strangler_proxy.shadow.settings import ShadowSettings

__all__ = ["Shadowing", "Tap", "shadow_routes"]

log = logging.getLogger("strangler.shadow")

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


def _shadow_route(table: Any, context: str, route: Any) -> ShadowRoute | None:
    shadow = route.shadow
    if shadow is None or shadow.upstream not in table.upstreams:
        return None
    calibrate = getattr(shadow, "calibrate", None)
    candidate = table.upstreams[shadow.upstream]
    second = table.upstreams.get(calibrate) if calibrate is not None else None
    return ShadowRoute(
        name=route.name,
        shadow_url=candidate.base_url,
        context=context,
        sample_rate=shadow.sample_rate,
        side_effect_free=shadow.side_effect_free,
        rules=CompareRules.coerce(shadow.compare),
        second_primary_url=second.base_url if second is not None else None,
        upstream=shadow.upstream,
        shadow_urls=candidate.endpoints,
        second_primary_urls=second.endpoints if second is not None else (),
    )


def shadow_routes(table: Any) -> dict[int, ShadowRoute]:
    """``id(route) -> ShadowRoute`` for every route of a route table with a shadow block."""
    found = {}
    for _, context, route in table.located_routes():
        shadow = _shadow_route(table, context, route)
        if shadow is not None:
            found[id(route)] = shadow
    return found


@dataclass(frozen=True)
class _Plan:
    """What happens to a route's traffic: mirrored (``shadow``), recorded (``record_rate``)."""

    shadow: ShadowRoute | None
    record_rate: float = 0.0


def _plans(table: Any) -> dict[int, _Plan]:
    plans = {}
    for _, context, route in table.located_routes():
        shadow = _shadow_route(table, context, route)
        record = getattr(route, "record", None)
        rate = float(getattr(record, "sample_rate", 0.0)) if record is not None else 0.0
        if shadow is not None or rate > 0:
            plans[id(route)] = _Plan(shadow, rate)
    return plans


def _text_headers(raw: Iterable[tuple[bytes | str, bytes | str]]) -> tuple[tuple[str, str], ...]:
    return tuple(
        (
            k.decode("latin-1") if isinstance(k, bytes) else k,
            v.decode("latin-1") if isinstance(v, bytes) else v,
        )
        for k, v in raw
    )


HeadersFor = Callable[[str], Iterable[tuple[bytes | str, bytes | str]]]


class Tap:
    """A ``send`` that forwards everything and keeps a bounded copy of the response."""

    __slots__ = (
        "_chunks",
        "_headers",
        "_owner",
        "_record",
        "_request",
        "_room",
        "_route",
        "_status",
        "send",
    )

    def __init__(
        self,
        owner: Shadowing,
        route: ShadowRoute | None,
        record: bool,
        request: CapturedRequest,
        send: Send,
    ) -> None:
        self._owner, self._route, self._record, self._request = owner, route, record, request
        self._status = 0
        self._headers: Sequence[tuple[bytes, bytes]] = ()
        self._chunks: list[bytes] | None = []
        self._room = owner.settings.max_response_bytes
        self.send = self._wrap(send)

    def _wrap(self, send: Send) -> Send:
        async def tapped(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.start":
                self._status, self._headers = message["status"], message.get("headers", ())
            elif message["type"] == "http.response.body" and self._chunks is not None:
                chunk = message.get("body", b"")
                self._room -= len(chunk)
                if self._room < 0:
                    self._chunks = None  # too large to compare: neither mirrored nor recorded
                else:
                    self._chunks.append(chunk)

        return tapped

    def finish(self) -> Submitted | None:
        """Hand the copies over (None when the response was not captured whole)."""
        if self._chunks is None or not self._status:
            self._owner.skipped_large += self._chunks is None
            return None
        response = CapturedResponse(
            self._status, _text_headers(self._headers), b"".join(self._chunks)
        )
        if self._record and self._owner.recorder is not None:
            self._owner.recorder.submit(self._request, response)
        if self._route is None:
            return None
        return self._owner.engine.submit(self._route, self._request, response, admitted=True)


class Shadowing:
    """The proxy's side of mirroring and recording: route plans, size caps, taps, lifecycle."""

    def __init__(
        self,
        engine: Mirror,
        settings: ShadowSettings | None = None,
        *,
        recorder: FlowRecorder | None = None,
        sample: Callable[[], float] = random.random,
        metrics: MirrorMetrics | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings or ShadowSettings()
        self.recorder = recorder
        self.shedder = ShedController(self.settings.shedding, sample=sample)
        self.in_flight = 0
        """Requests this worker is serving now (the app counts them; the shedder reads it)."""
        self._metrics = metrics
        self._load = LoopLoad(
            self.shedder,
            self.settings.shedding.interval,
            self._sampled,
            in_flight=lambda: self.in_flight,
        )
        self.skipped_large = 0
        self._plans: dict[int, _Plan] = {}
        self._table: Any = None
        self._sample = sample
        self._started = False

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, registry: CollectorRegistry | None = None
    ) -> Shadowing:
        """A mirror recording into the results store the environment selects
        (:mod:`strangler_proxy.shadow.backend`: Redis when ``STRANGLER_REDIS_URL`` is
        set, else the control-plane database): a sidecar process, or the engine in
        this process when ``STRANGLER_SHADOW_MODE=inline``.

        ``registry``: the proxy's Prometheus registry (the ``strangler_shadow_*`` series).
        Recording writes to ``STRANGLER_RECORD_FILE`` (default
        ``var/record/proxy-{pid}.flows``, ``{pid}`` the worker's process id), from
        :meth:`start` on.
        """
        settings = ShadowSettings.from_env(environ)
        metrics = MirrorMetrics(registry) if registry is not None else None
        if settings.mode == "process":
            store_url(environ)  # a bad store setting fails here, not in a restarting sidecar
            mirror = MirrorProcess(
                environ=os.environ if environ is None else environ,
                metrics=metrics,
                buffer_bytes=settings.buffer_bytes,
                nice=settings.nice,
                sched=settings.sched,
            )
            return cls(mirror, settings, metrics=metrics)
        engine = MirrorEngine.from_settings(settings, metrics, environ)
        return cls(engine, settings, metrics=metrics)

    def sync(self, table: Any) -> None:
        """Take the shadow and record blocks of a (re)loaded route table.

        Once started, the flow writer starts here (not on the request path) when a
        route first records.
        """
        self._table = table  # keeps the route objects (and so their ids) alive
        self._plans = _plans(table)
        if self._started:
            self._start_recorder()

    def start(self) -> None:
        """Start this process's own resources: call it in each worker (ASGI lifespan startup).

        The flow writer is a thread and a child process: one forked from a parent that
        started them would have neither, so each worker starts its own, writing to
        :meth:`ShadowSettings.record_path` with its own process id. The mirror starts on
        the first copy it gets, in the process that serves it.
        """
        self._started = True
        self._start_recorder()

    def _start_recorder(self) -> None:
        if self.recorder is not None or not any(p.record_rate for p in self._plans.values()):
            return
        try:
            self.recorder = FlowRecorder(self.settings.record_path()).start()
        except (CaptureError, OSError):
            log.exception("cannot record traffic: record blocks are ignored")
            self._plans = {key: _Plan(plan.shadow) for key, plan in self._plans.items()}

    @property
    def active(self) -> bool:
        return bool(self._plans)

    def _recording(self, rate: float) -> bool:
        if rate <= 0 or self.recorder is None:
            return False
        return rate >= 1.0 or self._sample() < rate

    def begin(
        self,
        route: Any,
        method: str,
        target: str,
        body: object,
        send: Send,
        headers: HeadersFor,
    ) -> Tap | None:
        """A tap when ``route`` mirrors or records and the body was buffered within the cap.

        ``headers(upstream)`` gives the request headers as the proxy would send them to
        that upstream (``""``: the primary, for recording); called only for a tap.
        """
        plan = self._plans.get(id(route)) if route is not None else None
        if plan is None:
            return None
        shadow = plan.shadow
        if shadow is not None and self.engine.admit(shadow, method) is not Submitted.QUEUED:
            shadow = None  # sampled out or unsafe: nothing to copy for the mirror
        elif shadow is not None and not self._keep(shadow):
            shadow = None
        record = self._recording(plan.record_rate)
        if shadow is None and not record:
            return None
        if body is not None and not isinstance(body, bytes):
            self.skipped_large += 1  # streamed body: no copy to send
            return None
        payload = body or b""
        if len(payload) > self.settings.max_request_bytes:
            self.skipped_large += 1
            return None
        if shadow is not None:
            self.engine.start()
        try:
            copied = _text_headers(headers(shadow.upstream if shadow is not None else ""))
        except Exception:  # e.g. the upstream vanished in a reload: never fail the request
            log.exception("cannot copy the request for shadowing")
            return None
        return Tap(self, shadow, record, CapturedRequest(method, target, copied, payload), send)

    def _keep(self, shadow: ShadowRoute) -> bool:
        """The adaptive shedder's say on a copy the route admitted (counted when shed)."""
        if not self.settings.shedding.adaptive:
            return True
        self._load.start()
        if self.shedder.keep():
            return True
        self.engine.shed(shadow)
        return False

    def _sampled(self, shedder: ShedController) -> None:
        if self._metrics is not None:
            self._metrics.shed_level.set(shedder.level)
            self._metrics.loop_load.set(shedder.load)
            self._metrics.loop_lag.set(shedder.lag)

    async def close(self) -> None:
        """Stop the mirror and the flow writer (what is queued is written first)."""
        self._started = False
        await self._load.stop()
        await self.engine.close()
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.close)
            self.recorder = None
