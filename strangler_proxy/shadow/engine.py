"""Live mirroring: send a copy of a request to the shadow upstream, off the request path.

The proxy calls :meth:`MirrorEngine.submit` after it has the primary's response.
``submit`` never awaits and never blocks: it samples, refuses unsafe methods unless
the route's shadow is side-effect-free, and puts the job on a bounded queue; when
the queue is full the copy is dropped and counted. A fixed number of worker tasks
(the engine's own concurrency limit) send the copy to the shadow upstream (and,
for noise calibration, to a second primary), compare, and record the
outcome in the results store. An upstream with several endpoints gets the copies in
turn; one that cannot be connected to passes the copy to the next.

The proxy runs the engine in a sidecar process by default
(:mod:`strangler_proxy.shadow._sidecar_client` feeds :mod:`strangler_proxy.shadow._sidecar`) at
the lowest CPU priority, so its work never runs in the proxy's event loop (it still
uses the machine's cores); ``STRANGLER_SHADOW_MODE=inline`` runs it in the proxy's
loop as below.

    engine = MirrorEngine(store=RedisShadowStore.from_url(url), concurrency=4)
    engine.start()                                         # inside the running loop
    engine.submit(route, request_copy, primary_response)   # on the request path
    await engine.close()                                   # at shutdown
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import aiohttp
import yarl
from prometheus_client import REGISTRY, CollectorRegistry, Gauge
from prometheus_client import Counter as PromCounter

from migration_plans.core.http import HOP_BY_HOP, SAFE_METHODS
from strangler_proxy.shadow._compare import CompareRules, compare_responses
from strangler_proxy.shadow._noise import NoiseLearner
from strangler_proxy.shadow.backend import open_store
from strangler_proxy.shadow.exchange import CapturedRequest, CapturedResponse
from strangler_proxy.shadow.settings import ShadowSettings
from strangler_proxy.shadow.store import Outcome, OutcomeKind, ShadowResults

__all__ = [
    "SHADOW_HEADER",
    "Mirror",
    "MirrorEngine",
    "MirrorMetrics",
    "ShadowRoute",
    "Submitted",
    "admission",
    "forwardable_headers",
    "outcome_totals",
]

log = logging.getLogger("strangler.shadow")

SHADOW_HEADER = "X-Strangler-Shadow"
# Set again by the client library for the copy (the Host the proxy chose is added back).
_NOT_REPLAYED = HOP_BY_HOP | {"host", "content-length"}


@dataclass(frozen=True)
class ShadowRoute:
    """What the engine needs to know about a route's ``shadow:`` block."""

    name: str
    shadow_url: str
    context: str = ""
    sample_rate: float = 1.0
    side_effect_free: bool = False
    rules: CompareRules = field(default_factory=CompareRules)
    second_primary_url: str | None = None
    upstream: str = ""  # the route table's name for the shadow upstream
    shadow_urls: tuple[str, ...] = ()
    """Every endpoint of the shadow upstream, taken in turn (empty: ``shadow_url`` alone)."""
    second_primary_urls: tuple[str, ...] = ()
    """Every endpoint of the second primary (empty: ``second_primary_url`` alone)."""

    @property
    def candidates(self) -> tuple[str, ...]:
        """The shadow upstream's endpoints."""
        return self.shadow_urls or (self.shadow_url,)

    @property
    def second_primaries(self) -> tuple[str, ...]:
        """The second primary's endpoints (none without calibration)."""
        if self.second_primary_urls:
            return self.second_primary_urls
        return (self.second_primary_url,) if self.second_primary_url else ()


class Submitted(StrEnum):
    """What :meth:`MirrorEngine.submit` did with a request copy."""

    QUEUED = "queued"
    SAMPLED_OUT = "sampled_out"
    UNSAFE = "skipped_unsafe"
    DROPPED = "dropped"
    SHED = "shed"
    """Admitted by the route's sample rate, kept back by the adaptive load shedder."""


class MirrorMetrics:
    """Prometheus series of the mirror (``strangler_shadow_*``)."""

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        self.outcomes = PromCounter(
            "strangler_shadow_outcomes",
            "Mirrored requests by route and outcome.",
            ["route", "outcome"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "strangler_shadow_queue_depth", "Copies waiting for a mirror worker.", registry=registry
        )
        self.sidecar_deaths = PromCounter(
            "strangler_shadow_sidecar_deaths",
            "Mirror sidecar processes that died while the proxy ran (each is replaced).",
            registry=registry,
        )
        self.shed_level = Gauge(
            "strangler_shadow_shed_level",
            "Share of admitted copies the adaptive shedder lets through (1: all, 0: none).",
            registry=registry,
        )
        self.loop_load = Gauge(
            "strangler_shadow_loop_load",
            "Share of time the proxy's event loop was busy (smoothed), as the shedder sees it.",
            registry=registry,
        )
        self.loop_lag = Gauge(
            "strangler_shadow_loop_lag_seconds",
            "How late the proxy's event loop ran the shedder's last timer.",
            registry=registry,
        )
        self.shed_level.set(1.0)
        self._children: dict[tuple[str, str], Any] = {}

    def count(self, route: str, outcome: str) -> None:
        """One outcome (labelled children cached: ``labels()`` is slow for a hot path)."""
        self.add(route, outcome, 1)

    def add(self, route: str, outcome: str, amount: float) -> None:
        """``amount`` outcomes at once (deltas reported by a mirror sidecar)."""
        child = self._children.get((route, outcome))
        if child is None:
            child = self._children[(route, outcome)] = self.outcomes.labels(route, outcome)
        child.inc(amount)


_default_metrics: MirrorMetrics | None = None


def default_metrics() -> MirrorMetrics:
    """Metrics on the process-wide registry, created once."""
    global _default_metrics
    if _default_metrics is None:
        _default_metrics = MirrorMetrics()
    return _default_metrics


def forwardable_headers(
    headers: tuple[tuple[str, str], ...],
) -> list[tuple[str, str]]:
    """Request headers to replay upstream: without hop-by-hop, Host and Content-Length."""
    return [(key, value) for key, value in headers if key.lower() not in _NOT_REPLAYED]


def admission(route: ShadowRoute, method: str, sample: Callable[[], float]) -> Submitted:
    """``QUEUED`` when a request of ``method`` on ``route`` is mirrored, else why not."""
    if method.upper() not in SAFE_METHODS and not route.side_effect_free:
        return Submitted.UNSAFE
    if route.sample_rate < 1.0 and sample() >= route.sample_rate:
        return Submitted.SAMPLED_OUT
    return Submitted.QUEUED


class Mirror(Protocol):
    """What the proxy's :class:`~strangler_proxy.shadow.shadowing.Shadowing` needs of a mirror:
    :class:`MirrorEngine` (in the proxy's loop) or
    :class:`~strangler_proxy.shadow._sidecar_client.MirrorProcess` (a sidecar process)."""

    def admit(self, route: ShadowRoute, method: str) -> Submitted: ...

    def start(self) -> None: ...

    def submit(
        self,
        route: ShadowRoute,
        request: CapturedRequest,
        primary: CapturedResponse,
        *,
        admitted: bool = False,
    ) -> Submitted: ...

    def shed(self, route: ShadowRoute) -> None: ...

    async def close(self, drain_timeout: float = 5.0) -> None: ...


def outcome_totals(exposition: str) -> dict[str, float]:
    """Mirror outcomes summed over routes, read from a Prometheus text exposition
    (the proxy's ``/_strangler/metrics``): ``{"queued": 12.0, "matched": 10.0, ...}``."""
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        if family.name != "strangler_shadow_outcomes":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                outcome = sample.labels["outcome"]
                totals[outcome] = totals.get(outcome, 0.0) + sample.value
    return totals


def join_url(base: str, path: str) -> str:
    return base.rstrip("/") + (path if path.startswith("/") else "/" + path)


_BATCH = 200  # outcomes per store write
_FLUSH_SECONDS = 0.25  # at the latest
_SKIP_AUTO = frozenset({"User-Agent", "Accept", "Accept-Encoding", "Content-Type"})
_Job = tuple[ShadowRoute, CapturedRequest, CapturedResponse, float]
_CONNECT_ERRORS = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


class MirrorEngine:
    """A bounded queue plus ``concurrency`` workers that mirror, compare and record."""

    def __init__(
        self,
        *,
        store: ShadowResults | None = None,
        noise: NoiseLearner | None = None,
        queue_size: int = 1000,
        concurrency: int = 4,
        timeout: float = 5.0,
        metrics: MirrorMetrics | None = None,
        sample: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.noise = noise
        self.concurrency = concurrency
        self.timeout = timeout
        self.stats: Counter[str] = Counter()
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=queue_size)
        self._metrics = metrics or default_metrics()
        self._sample = sample
        self._client: aiohttp.ClientSession | None = None
        self._turns: dict[tuple[str, ...], int] = {}  # endpoints -> copies sent to them
        self._workers: list[asyncio.Task[None]] = []
        self._pending_drops: Counter[tuple[str, str]] = Counter()
        self._pending_sheds: Counter[tuple[str, str]] = Counter()
        self._pending: list[Outcome] = []
        self._pending_noise: dict[str, set[str]] = {}
        self._flush_now = asyncio.Event()
        self._flush_lock = asyncio.Lock()

    @classmethod
    def from_settings(
        cls,
        settings: ShadowSettings,
        metrics: MirrorMetrics | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> MirrorEngine:
        """An engine with a noise learner, recording into the store ``environ`` selects
        (:func:`strangler_proxy.shadow.backend.open_store`), sized by ``settings``."""
        return cls(
            store=open_store(prefix=settings.prefix, environ=environ),
            noise=NoiseLearner(),
            queue_size=settings.queue_size,
            concurrency=settings.concurrency,
            timeout=settings.timeout,
            metrics=metrics,
        )

    def start(self) -> None:
        """Open the client and start the workers (idempotent; needs a running loop)."""
        if self._workers:
            return
        # aiohttp, like the forwarder: a fraction of httpx's CPU per request, and this
        # runs in the proxy's process. Bytes pass through undecoded, as the primary's did.
        self._client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.concurrency * 2, keepalive_timeout=30),
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            skip_auto_headers=_SKIP_AUTO,
        )
        self._workers = [
            asyncio.create_task(self._worker(), name=f"shadow-mirror-{index}")
            for index in range(self.concurrency)
        ]
        self._workers.append(asyncio.create_task(self._flusher(), name="shadow-results"))

    def submit(
        self,
        route: ShadowRoute,
        request: CapturedRequest,
        primary: CapturedResponse,
        *,
        admitted: bool = False,
    ) -> Submitted:
        """Queue a copy for mirroring; never blocks (call from the event loop).

        ``admitted``: :meth:`admit` already said yes for this request (the proxy asks
        first, so that it copies nothing for requests that are not mirrored).
        """
        outcome = Submitted.QUEUED if admitted else self.admit(route, request.method)
        if outcome is Submitted.QUEUED:
            try:
                self._queue.put_nowait((route, request, primary, time.time()))
            except asyncio.QueueFull:
                outcome = Submitted.DROPPED
                self._pending_drops[(route.name, route.context)] += 1
            self._count(route.name, outcome.value)
            self._metrics.queue_depth.set(self._queue.qsize())
        return outcome

    def admit(self, route: ShadowRoute, method: str) -> Submitted:
        """Whether a request of ``method`` on ``route`` is mirrored (counts the refusals)."""
        outcome = admission(route, method, self._sample)
        if outcome is not Submitted.QUEUED:
            self._count(route.name, outcome.value)
        return outcome

    def record_dropped(self, route: str, context: str, count: int) -> None:
        """Copies dropped before they reached this engine: into the store, not the metrics."""
        self._pending_drops[(route, context)] += count

    def shed(self, route: ShadowRoute) -> None:
        """One copy the adaptive shedder kept back: counted, and stored in the next batch."""
        self._count(route.name, Submitted.SHED.value)
        self.record_shed(route.name, route.context, 1)

    def record_shed(self, route: str, context: str, count: int) -> None:
        """Copies shed before they reached this engine: into the store, not the metrics."""
        self._pending_sheds[(route, context)] += count

    def _count(self, route: str, outcome: str) -> None:
        self.stats[outcome] += 1
        self._metrics.count(route, outcome)

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    @property
    def queue_room(self) -> int:
        """Copies the queue still takes."""
        return self._queue.maxsize - self._queue.qsize()

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until every queued copy has been mirrored and recorded."""
        await asyncio.wait_for(self._queue.join(), timeout)
        await self._flush()

    async def close(self, drain_timeout: float = 5.0) -> None:
        """Finish queued work (up to ``drain_timeout``), then stop workers and the client."""
        if self._workers:
            try:
                await self.drain(drain_timeout)
            except TimeoutError:
                log.warning("shadow queue not drained at close: %d left", self._queue.qsize())
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _worker(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self._mirror(*job)
            except Exception:
                log.exception("shadow mirror failed for route %s", job[0].name)
            finally:
                self._queue.task_done()
                self._metrics.queue_depth.set(self._queue.qsize())

    async def _send(self, base_url: str, request: CapturedRequest) -> CapturedResponse:
        assert self._client is not None, "MirrorEngine.start() was not called"
        # Keep the Host the proxy chose for this upstream (its host_header policy): the
        # primary answered for that host, so absolute links only compare equal with it.
        host = [(key, value) for key, value in request.headers if key.lower() == "host"]
        headers = [*forwardable_headers(request.headers), *host, (SHADOW_HEADER, "1")]
        async with self._client.request(
            request.method,
            yarl.URL(join_url(base_url, request.path), encoded=True),
            headers=headers,
            data=request.body or None,
            allow_redirects=False,
        ) as response:
            body = await response.read()
            raw = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers)
            return CapturedResponse(response.status, raw, body)

    async def _send_in_turn(
        self, endpoints: tuple[str, ...], request: CapturedRequest
    ) -> CapturedResponse:
        """Send to the next of ``endpoints``; to the one after when it cannot be connected to."""
        turn = self._turns.get(endpoints, 0)
        self._turns[endpoints] = turn + 1
        last = len(endpoints) - 1
        for step in range(last + 1):
            try:
                return await self._send(endpoints[(turn + step) % len(endpoints)], request)
            except _CONNECT_ERRORS:
                if step == last:
                    raise
        raise AssertionError("unreachable")

    async def _mirror(
        self, route: ShadowRoute, request: CapturedRequest, primary: CapturedResponse, at: float
    ) -> None:
        second = None
        try:
            if route.second_primaries and self.noise is not None:
                second = await self._send_in_turn(route.second_primaries, request)
            candidate = await self._send_in_turn(route.candidates, request)
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            kind: OutcomeKind = "shadow_error"
            self._keep(
                Outcome(route.name, kind, route.context, request, primary, error=error, at=at)
            )
            return
        # Inline, not in a thread: a comparing thread would hold the GIL against the event
        # loop (convoy effect: the primary path waits up to a switch interval per request).
        learned: tuple[str, ...] = ()
        rules = route.rules
        if self.noise is not None:
            if second is not None:
                learned = self.noise.observe(route.name, primary, second, route.rules)
            rules = self.noise.rules_for(route.name, route.rules)
        result = compare_responses(primary, candidate, rules)
        kind = "matched" if result.matched else "mismatched"
        self._keep(
            Outcome(route.name, kind, route.context, request, primary, candidate, result, at=at)
        )
        if learned:
            self._pending_noise.setdefault(route.name, set()).update(learned)

    def _keep(self, outcome: Outcome) -> None:
        """Count now; write to the store in the next batch."""
        self._count(outcome.route, outcome.kind)
        if self.store is not None:
            self._pending.append(outcome)
            if len(self._pending) >= _BATCH:
                self._flush_now.set()

    async def _flush(self) -> None:
        """Write pending outcomes, drops and noise in one thread hop (one Redis pipeline)."""
        async with self._flush_lock:
            outcomes, self._pending = self._pending, []
            drops, self._pending_drops = self._pending_drops, Counter()
            sheds, self._pending_sheds = self._pending_sheds, Counter()
            noise, self._pending_noise = self._pending_noise, {}
            if self.store is None or not (outcomes or drops or sheds or noise):
                return
            outcomes += [Outcome.dropped(r, ctx, n) for (r, ctx), n in drops.items()]
            outcomes += [Outcome.shed(r, ctx, n) for (r, ctx), n in sheds.items()]
            await asyncio.to_thread(self._write, self.store, outcomes, noise)

    @staticmethod
    def _write(store: ShadowResults, outcomes: list[Outcome], noise: dict[str, set[str]]) -> None:
        store.record_many(outcomes)
        for route, paths in noise.items():
            store.save_noise(route, paths)

    async def _flusher(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), _FLUSH_SECONDS)
            self._flush_now.clear()
            try:
                await self._flush()
            except Exception:
                log.exception("could not record shadow results")
