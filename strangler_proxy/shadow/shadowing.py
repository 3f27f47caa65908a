"""Shadowing as the proxy sees it: which routes mirror, tapping the response, handing off.

The proxy asks :meth:`Shadowing.begin` once per request. For a route with a
``shadow:`` block (and a buffered request body) it gets a :class:`Tap`: a ``send``
wrapper that passes every message to the client unchanged and keeps a copy of the
response, up to ``max_response_bytes``. After the response is complete the proxy
calls :meth:`Tap.finish`, which hands request copy and response to the mirror
(never awaited; a full queue drops). By default the mirror is a sidecar process at a
lower CPU priority (:class:`~strangler_proxy.shadow.sidecar_client.MirrorProcess` running the
:class:`~strangler_proxy.shadow.engine.MirrorEngine`), so mirroring and comparing never
take the proxy's event loop; ``STRANGLER_SHADOW_MODE=inline`` runs the engine in
the proxy's loop instead.

    tap = shadowing.begin(route, method, path_qs, body, send, headers_for_upstream)
    status = await forward(..., send=tap.send if tap else send)
    if tap: tap.finish()

A route with ``record: {sample_rate: 0.01}`` also has a sample of its exchanges
written (redacted) to a mitmproxy flow file by :class:`~strangler_proxy.shadow.recorder.FlowRecorder`.

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
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from strangler_proxy.shadow.captures import CaptureError
from strangler_proxy.shadow.compare import CompareRules
from strangler_proxy.shadow.engine import (
    Mirror,
    MirrorEngine,
    MirrorMetrics,
    ShadowRoute,
    Submitted,
)
from strangler_proxy.shadow.exchange import CapturedRequest, CapturedResponse
from strangler_proxy.shadow.recorder import FlowRecorder
from strangler_proxy.shadow.sidecar_client import MirrorProcess
from strangler_proxy.shadow.store import DEFAULT_PREFIX
from strangler_proxy.shadow.wire import SCHEDULING

__all__ = ["MODES", "ShadowSettings", "Shadowing", "Tap", "shadow_routes"]

log = logging.getLogger("strangler.shadow")

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
MODES = ("process", "inline")


@dataclass(frozen=True)
class ShadowSettings:
    """Process-wide mirror settings (``STRANGLER_SHADOW_*``; the store at
    ``STRANGLER_SHADOW_REDIS_URL``, else ``STRANGLER_REDIS_URL``).

    ``mode``: ``process`` (a sidecar in scheduling class ``sched``, ``idle`` or
    ``normal``, at ``nice`` more niceness, fed through a buffer of ``buffer_bytes``)
    or ``inline`` (the engine in the proxy's event loop).
    """

    queue_size: int = 1000
    concurrency: int = 4
    timeout: float = 5.0
    max_request_bytes: int = 64 * 1024
    max_response_bytes: int = 1024 * 1024
    redis_url: str | None = None
    prefix: str = DEFAULT_PREFIX
    record_file: Path = Path(f"var/record/proxy-{os.getpid()}.flows")
    mode: str = "process"
    nice: int = 10
    sched: str = "idle"
    buffer_bytes: int = 1024 * 1024
    drain: float = 5.0

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
            redis_url=env.get("STRANGLER_SHADOW_REDIS_URL")
            or env.get("STRANGLER_REDIS_URL")
            or None,
            prefix=env.get("STRANGLER_SHADOW_PREFIX", DEFAULT_PREFIX),
            record_file=Path(env.get("STRANGLER_RECORD_FILE") or cls.record_file),
            mode=_choice("MODE", env.get("STRANGLER_SHADOW_MODE") or cls.mode, MODES),
            nice=int(number("NICE", cls.nice)),
            sched=_choice("SCHED", env.get("STRANGLER_SHADOW_SCHED") or cls.sched, SCHEDULING),
            buffer_bytes=int(number("BUFFER_BYTES", cls.buffer_bytes)),
            drain=number("DRAIN", cls.drain),
        )


def _choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise ValueError(f"STRANGLER_SHADOW_{name}={raw!r}: use one of {', '.join(choices)}")
    return value


def _shadow_route(table: Any, context: str, route: Any) -> ShadowRoute | None:
    shadow = route.shadow
    if shadow is None or shadow.upstream not in table.upstreams:
        return None
    calibrate = getattr(shadow, "calibrate", None)
    return ShadowRoute(
        name=route.name,
        shadow_url=table.upstreams[shadow.upstream].url.rstrip("/"),
        context=context,
        sample_rate=shadow.sample_rate,
        side_effect_free=shadow.side_effect_free,
        rules=CompareRules.coerce(shadow.compare),
        second_primary_url=(
            table.upstreams[calibrate].url.rstrip("/") if calibrate in table.upstreams else None
        ),
        upstream=shadow.upstream,
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
    ) -> None:
        self.engine = engine
        self.settings = settings or ShadowSettings()
        self.recorder = recorder
        self.skipped_large = 0
        self._plans: dict[int, _Plan] = {}
        self._table: Any = None
        self._sample = sample

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
        ``var/record/proxy-<pid>.flows``), started when a route first asks for it.
        """
        settings = ShadowSettings.from_env(environ)
        metrics = MirrorMetrics(registry) if registry is not None else None
        if settings.mode == "process":
            from strangler_proxy.shadow.backend import store_url

            store_url(environ)  # a bad store setting fails here, not in a restarting sidecar
            mirror = MirrorProcess(
                environ=os.environ if environ is None else environ,
                metrics=metrics,
                buffer_bytes=settings.buffer_bytes,
                nice=settings.nice,
                sched=settings.sched,
            )
            return cls(mirror, settings)
        return cls(MirrorEngine.from_settings(settings, metrics, environ), settings)

    def sync(self, table: Any) -> None:
        """Take the shadow and record blocks of a (re)loaded route table.

        The flow writer starts here, not on the request path, when a route records.
        """
        self._table = table  # keeps the route objects (and so their ids) alive
        self._plans = _plans(table)
        if self.recorder is None and any(plan.record_rate for plan in self._plans.values()):
            try:
                self.recorder = FlowRecorder(self.settings.record_file).start()
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

    async def close(self) -> None:
        await self.engine.close()
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.close)
            self.recorder = None
