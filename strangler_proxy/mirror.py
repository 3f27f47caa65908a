"""Live mirroring: send a copy of a request to the shadow upstream, off the request path.

The proxy calls :meth:`MirrorEngine.submit` after it has the primary's response.
``submit`` never awaits and never blocks: it samples, refuses unsafe methods unless
the route's shadow is side-effect-free, and puts the job on a bounded queue; when
the queue is full the copy is dropped and counted. A fixed number of worker tasks
(the engine's own concurrency limit) send the copy to the shadow upstream (and,
for noise calibration, to a second primary), compare in a thread, and record the
outcome in the results store.

    engine = MirrorEngine(store=RedisShadowStore.from_url(url), concurrency=4)
    engine.start()                                         # inside the running loop
    engine.submit(route, request_copy, primary_response)   # on the request path
    await engine.close()                                   # at shutdown
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import httpx
from prometheus_client import REGISTRY, CollectorRegistry, Gauge
from prometheus_client import Counter as PromCounter

from strangler_proxy.compare import CompareRules, compare_responses
from strangler_proxy.exchange import CapturedRequest, CapturedResponse
from strangler_proxy.noise import NoiseLearner
from strangler_proxy.shadow_store import Outcome, OutcomeKind, ShadowResults

__all__ = [
    "SHADOW_HEADER",
    "MirrorEngine",
    "MirrorMetrics",
    "ShadowRoute",
    "Submitted",
    "forwardable_headers",
]

log = logging.getLogger("strangler.shadow")

SHADOW_HEADER = "X-Strangler-Shadow"
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


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


class Submitted(StrEnum):
    """What :meth:`MirrorEngine.submit` did with a request copy."""

    QUEUED = "queued"
    SAMPLED_OUT = "sampled_out"
    UNSAFE = "skipped_unsafe"
    DROPPED = "dropped"


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
    return [(key, value) for key, value in headers if key.lower() not in _HOP_BY_HOP]


def join_url(base: str, path: str) -> str:
    return base.rstrip("/") + (path if path.startswith("/") else "/" + path)


_Job = tuple[ShadowRoute, CapturedRequest, CapturedResponse, float]


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
        transport: httpx.AsyncBaseTransport | None = None,
        metrics: MirrorMetrics | None = None,
        sample: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.noise = noise
        self.concurrency = concurrency
        self.timeout = timeout
        self.stats: Counter[str] = Counter()
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=queue_size)
        self._transport = transport
        self._metrics = metrics or default_metrics()
        self._sample = sample
        self._client: httpx.AsyncClient | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._pending_drops: Counter[tuple[str, str]] = Counter()

    def start(self) -> None:
        """Open the client and start the workers (idempotent; needs a running loop)."""
        if self._workers:
            return
        limits = httpx.Limits(max_connections=self.concurrency * 2)
        self._client = httpx.AsyncClient(
            transport=self._transport, timeout=self.timeout, limits=limits
        )
        self._workers = [
            asyncio.create_task(self._worker(), name=f"shadow-mirror-{index}")
            for index in range(self.concurrency)
        ]
        self._workers.append(asyncio.create_task(self._flush_drops(), name="shadow-drops"))

    def submit(
        self, route: ShadowRoute, request: CapturedRequest, primary: CapturedResponse
    ) -> Submitted:
        """Queue a copy for mirroring; never blocks (call from the event loop)."""
        outcome = self._admit(route, request)
        if outcome is Submitted.QUEUED:
            try:
                self._queue.put_nowait((route, request, primary, time.time()))
            except asyncio.QueueFull:
                outcome = Submitted.DROPPED
                self._pending_drops[(route.name, route.context)] += 1
        self._count(route.name, outcome.value)
        self._metrics.queue_depth.set(self._queue.qsize())
        return outcome

    def _admit(self, route: ShadowRoute, request: CapturedRequest) -> Submitted:
        if not request.is_safe and not route.side_effect_free:
            return Submitted.UNSAFE
        if route.sample_rate < 1.0 and self._sample() >= route.sample_rate:
            return Submitted.SAMPLED_OUT
        return Submitted.QUEUED

    def _count(self, route: str, outcome: str) -> None:
        self.stats[outcome] += 1
        self._metrics.outcomes.labels(route=route, outcome=outcome).inc()

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until every queued copy has been mirrored and recorded."""
        await asyncio.wait_for(self._queue.join(), timeout)
        await self._flush_pending_drops()

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
            await self._client.aclose()
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
        headers = [*forwardable_headers(request.headers), (SHADOW_HEADER, "1")]
        response = await self._client.request(
            request.method,
            join_url(base_url, request.path),
            headers=headers,
            content=request.body or None,
        )
        return CapturedResponse(
            response.status_code, tuple(response.headers.items()), response.content
        )

    async def _mirror(
        self, route: ShadowRoute, request: CapturedRequest, primary: CapturedResponse, at: float
    ) -> None:
        second = None
        try:
            if route.second_primary_url and self.noise is not None:
                second = await self._send(route.second_primary_url, request)
            candidate = await self._send(route.shadow_url, request)
        except httpx.HTTPError as exc:
            outcome = Outcome(
                route.name,
                "shadow_error",
                route.context,
                request,
                primary,
                error=f"{type(exc).__name__}: {exc}",
                at=at,
            )
            await asyncio.to_thread(self._record, outcome, ())
            self._count(route.name, outcome.kind)
            return
        outcome, learned = await asyncio.to_thread(
            self._compare, route, request, primary, second, candidate, at
        )
        await asyncio.to_thread(self._record, outcome, learned)
        self._count(route.name, outcome.kind)

    def _compare(
        self,
        route: ShadowRoute,
        request: CapturedRequest,
        primary: CapturedResponse,
        second: CapturedResponse | None,
        candidate: CapturedResponse,
        at: float,
    ) -> tuple[Outcome, tuple[str, ...]]:
        learned: tuple[str, ...]
        rules, learned = route.rules, ()
        if self.noise is not None:
            if second is not None:
                learned = self.noise.observe(route.name, primary, second, route.rules)
            rules = self.noise.rules_for(route.name, route.rules)
        result = compare_responses(primary, candidate, rules)
        kind: OutcomeKind = "matched" if result.matched else "mismatched"
        outcome = Outcome(
            route.name, kind, route.context, request, primary, candidate, result, at=at
        )
        return outcome, learned

    def _record(self, outcome: Outcome, learned: tuple[str, ...]) -> None:
        if self.store is None:
            return
        self.store.record(outcome)
        if learned:
            self.store.save_noise(outcome.route, learned)

    async def _flush_pending_drops(self) -> None:
        if not self._pending_drops or self.store is None:
            self._pending_drops.clear()
            return
        pending, self._pending_drops = self._pending_drops, Counter()
        await asyncio.to_thread(self._record_drops, pending)

    def _record_drops(self, pending: Counter[tuple[str, str]]) -> None:
        assert self.store is not None
        for (route, context), count in pending.items():
            self.store.record(Outcome.dropped(route, context, count))

    async def _flush_drops(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self._flush_pending_drops()
            except Exception:
                log.exception("could not record dropped shadow copies")
