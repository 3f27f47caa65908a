"""Offline replay: send captured requests to a primary and a candidate, compare, record.

Requests come from a mitmproxy flow file or a HAR file
(:func:`strangler_proxy.shadow._captures.read_capture`). Each is sent to both upstreams
with bounded concurrency (httpx), compared with the same rules as live shadowing,
and recorded in a results store under an endpoint name such as
``GET /api/v1/products/{id}/``, so ``strangler shadow report`` reads it the same
way. Unsafe methods are skipped unless ``include_writes`` (disposable upstreams).

Two things make a replay comparable with what live shadowing sees:

- **Host is kept.** Each request carries the Host it was captured with to both
  upstreams (``keep_host``), as the live mirror does, so absolute links built from it
  (``next``/``previous`` of paginated lists, ``Location``) are equal on both sides.
- **The identity header is signed afresh** when an ``identity_key`` is given (the key
  the proxy signs with, ``STRANGLER_IDENTITY_KEY``): a captured one has expired and a
  capture taken in front of the monolith has none, so without it every write to a
  service is a 401. The captured header, if any, is dropped.

With ``include_writes`` every unsafe request is a barrier: it is sent alone, after
the requests before it have finished and before any after it start, so both sides
see the same sequence of states. Writes are sent as ordinary requests (no
``X-Strangler-Shadow`` header, which services refuse on unsafe methods): only ever
replay writes against throwaway copies of the data.

    summary = asyncio.run(replay(read_capture(path), primary=url_a, candidate=url_b,
                                 store=MemoryShadowStore()))
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from migration_plans.core.identity import IDENTITY_HEADER, Identity, sign_identity
from migration_plans.core.settings import known_contexts
from strangler_proxy.edge.errors import ProxyError
from strangler_proxy.routing.normalize import normalize_path
from strangler_proxy.shadow._captures import CapturedExchange
from strangler_proxy.shadow._compare import CompareRules, compare_responses
from strangler_proxy.shadow._noise import NoiseLearner
from strangler_proxy.shadow.engine import SHADOW_HEADER, forwardable_headers, join_url
from strangler_proxy.shadow.exchange import CapturedRequest, CapturedResponse
from strangler_proxy.shadow.store import Outcome, OutcomeKind, ShadowResults

__all__ = ["ReplayOptions", "ReplaySummary", "endpoint_name", "replay"]

_ID_SEGMENT = re.compile(
    r"^(\d+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{24,})$",
    re.IGNORECASE,
)


def endpoint_name(request: CapturedRequest) -> str:
    """``METHOD /path/{id}/``: ids (numbers, UUIDs, long hex) become ``{id}``, query dropped."""
    path = urlsplit(request.path).path or "/"
    segments = ["{id}" if _ID_SEGMENT.match(seg) else seg for seg in path.split("/")]
    return f"{request.method.upper()} {'/'.join(segments)}"


REPLAY_IDENTITY = Identity(sub="strangler-replay", name="strangler-replay")
"""Who replayed writes are signed as, unless :attr:`ReplayOptions.identity` says."""


@dataclass(frozen=True)
class ReplayOptions:
    """How to replay: concurrency, writes, Host, identity signing, timeout, rules, naming."""

    concurrency: int = 8
    include_writes: bool = False
    keep_host: bool = True
    identity_key: bytes | None = None
    identity: Identity = REPLAY_IDENTITY
    identity_ttl: float = 60.0
    identity_audience: tuple[str, ...] = field(default_factory=known_contexts)
    """The services a replayed identity is signed for (both sides of a replay accept it):
    the contexts of the plans folder and the shipped ones."""
    timeout: float = 10.0
    rules: CompareRules = field(default_factory=CompareRules)
    context: str = "replay"
    endpoint: Callable[[CapturedRequest], str] = endpoint_name
    routes: Any = None  # a matcher.Router: results named by route, with its shadow rules

    def classify(self, request: CapturedRequest) -> tuple[str, CompareRules, str]:
        """``(result name, rules, context)`` for one request."""
        if self.routes is not None:
            found = route_rules(self.routes, request)
            if found is not None:
                return found
        return self.endpoint(request), self.rules, self.context


def route_rules(router: Any, request: CapturedRequest) -> tuple[str, CompareRules, str] | None:
    """The route that serves ``request`` (``router``: a route table's
    :class:`~strangler_proxy.routing.matcher.Router`) and its shadow compare rules, if any."""
    try:
        path = normalize_path(urlsplit(request.path).path.encode())
    except ProxyError:  # a path the proxy would refuse: no route serves it
        return None
    target = router.resolve(request.method.upper(), path, {}, "")
    route = target.route
    if route is None or route.shadow is None:
        return None
    return route.name, CompareRules.coerce(route.shadow.compare), target.context or ""


@dataclass
class ReplaySummary:
    """What a replay did, by outcome (``matched``, ``mismatched``, ``shadow_error``, ...)."""

    outcomes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    def to_dict(self) -> dict[str, object]:
        return {"total": self.total, "seconds": round(self.seconds, 3), **self.outcomes}


class _Replayer:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        primary: str,
        candidate: str,
        store: ShadowResults,
        options: ReplayOptions,
        second_primary: str | None,
        noise: NoiseLearner | None,
    ) -> None:
        self.client, self.store, self.options = client, store, options
        self.primary, self.candidate, self.second_primary = primary, candidate, second_primary
        self.noise = noise or (NoiseLearner() if second_primary else None)
        self.summary = ReplaySummary()

    def headers(self, request: CapturedRequest) -> list[tuple[str, str]]:
        """What to send: the captured headers (Host kept unless told), a fresh identity."""
        headers = [
            (key, value)
            for key, value in forwardable_headers(request.headers)
            if key.lower() != IDENTITY_HEADER.lower()
        ]
        if self.options.keep_host and (host := request.header("host")):
            headers.append(("Host", host))
        if self.options.identity_key is not None:
            signed = sign_identity(
                self.options.identity,
                key=self.options.identity_key,
                audience=self.options.identity_audience,
                ttl=self.options.identity_ttl,
            )
            headers.append((IDENTITY_HEADER, signed))
        if request.is_safe:
            headers.append((SHADOW_HEADER, "replay"))
        return headers

    async def send(self, base: str, request: CapturedRequest) -> CapturedResponse:
        headers = self.headers(request)
        response = await self.client.request(
            request.method, join_url(base, request.path), headers=headers, content=request.body
        )
        return CapturedResponse(
            response.status_code, tuple(response.headers.items()), response.content
        )

    async def one(self, request: CapturedRequest) -> None:
        route, rules, context = self.options.classify(request)
        if not request.is_safe and not self.options.include_writes:
            self.summary.outcomes["skipped_writes"] += 1
            return
        try:
            primary = await self.send(self.primary, request)
            second = await self.send(self.second_primary, request) if self.second_primary else None
            candidate = await self.send(self.candidate, request)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
            self.record(Outcome(route, "shadow_error", context, request, error=error))
            return
        if self.noise is not None:
            if second is not None:
                paths = self.noise.observe(route, primary, second, rules)
                self.store.save_noise(route, paths)
            rules = self.noise.rules_for(route, rules)
        result = compare_responses(primary, candidate, rules)
        kind: OutcomeKind = "matched" if result.matched else "mismatched"
        self.record(Outcome(route, kind, context, request, primary, candidate, result))

    def record(self, outcome: Outcome) -> None:
        self.store.record(outcome)
        self.summary.outcomes[outcome.kind] += 1

    async def worker(self, jobs: asyncio.Queue[CapturedRequest | None]) -> None:
        while (request := await jobs.get()) is not None:
            try:
                await self.one(request)
            finally:
                jobs.task_done()
        jobs.task_done()


async def replay(
    exchanges: Iterable[CapturedExchange],
    *,
    primary: str,
    candidate: str,
    store: ShadowResults,
    options: ReplayOptions | None = None,
    second_primary: str | None = None,
    noise: NoiseLearner | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ReplaySummary:
    """Replay every captured request against ``primary`` and ``candidate``."""
    options = options or ReplayOptions()
    started = time.monotonic()
    limits = httpx.Limits(max_connections=options.concurrency * 3)
    async with httpx.AsyncClient(
        transport=transport, timeout=options.timeout, limits=limits
    ) as client:
        replayer = _Replayer(
            client,
            primary=primary,
            candidate=candidate,
            store=store,
            options=options,
            second_primary=second_primary,
            noise=noise,
        )
        jobs: asyncio.Queue[CapturedRequest | None] = asyncio.Queue(maxsize=options.concurrency)
        async with asyncio.TaskGroup() as group:  # a failing worker cancels the feeding too
            for _ in range(options.concurrency):
                group.create_task(replayer.worker(jobs))
            for exchange in exchanges:
                request = exchange.request
                if options.include_writes and not request.is_safe:
                    await jobs.join()  # a write sees every earlier request done, alone
                    await replayer.one(request)
                else:
                    await jobs.put(request)
            for _ in range(options.concurrency):
                await jobs.put(None)
    replayer.summary.seconds = time.monotonic() - started
    return replayer.summary
