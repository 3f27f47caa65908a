"""Where shadow results live: per-route counters by time bucket, top fields, mismatch samples.

Redis is the store the proxy, the report and the plan gates share
(:class:`RedisShadowStore`); :class:`MemoryShadowStore` keeps the same results in
process for an offline replay that is reported at once. Counters are kept per
route in time buckets (one minute by default) so ``--since`` works and a dashboard
can plot the match rate over time; ``since`` is honoured to bucket precision.

Keys (``prefix`` defaults to ``strangler:shadow``):

    {prefix}:routes              hash  route -> context
    {prefix}:b:{route}           zset  bucket start (unix s), for range reads
    {prefix}:c:{route}:{bucket}  hash  compared matched mismatched dropped shadow_errors shed
    {prefix}:f:{route}:{bucket}  hash  differing field path -> count
    {prefix}:s:{route}           list  newest-first mismatch samples (JSON), capped
    {prefix}:noise:{route}       set   learned noise paths

Samples are redacted before they are written. The gates read
:meth:`RedisShadowStore.match_rate` (or :func:`strangler_proxy.shadow.backend.match_rate`,
which opens the store the environment selects).

    store = RedisShadowStore.from_url("redis://127.0.0.1:6379/0")
    store.record(outcome)
    rate, compared = store.match_rate(context="catalog", since=parse_since("1h"))
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import redis

from strangler_proxy.shadow._compare import CompareResult
from strangler_proxy.shadow._redaction import redact_request, redact_response
from strangler_proxy.shadow.exchange import CapturedRequest, CapturedResponse

__all__ = [
    "COUNTERS",
    "DEFAULT_PREFIX",
    "Counts",
    "MemoryShadowStore",
    "Outcome",
    "OutcomeKind",
    "RedisShadowStore",
    "ShadowResults",
    "parse_since",
]

DEFAULT_PREFIX = "strangler:shadow"
COUNTERS = ("compared", "matched", "mismatched", "dropped", "shadow_errors", "shed")
OutcomeKind = Literal["matched", "mismatched", "shadow_error", "dropped", "shed"]
_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Counts:
    """Counters of one route (or a sum of routes) over a time range.

    ``dropped``: copies lost because the mirror's queue or buffer was full; ``shed``:
    copies the adaptive load shedder kept back while the proxy needed the CPU.
    """

    compared: int = 0
    matched: int = 0
    mismatched: int = 0
    dropped: int = 0
    shadow_errors: int = 0
    shed: int = 0

    @property
    def match_rate(self) -> float | None:
        """matched / compared, None before anything was compared."""
        return self.matched / self.compared if self.compared else None

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, n) + getattr(other, n) for n in COUNTERS))

    def to_dict(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in COUNTERS}, "match_rate": self.match_rate}


@dataclass(frozen=True)
class Outcome:
    """What happened to one mirrored request (``dropped`` ones carry no exchange)."""

    route: str
    kind: OutcomeKind
    context: str = ""
    request: CapturedRequest | None = None
    primary: CapturedResponse | None = None
    candidate: CapturedResponse | None = None
    result: CompareResult | None = None
    error: str = ""
    at: float = field(default_factory=time.time)
    count: int = 1

    @classmethod
    def dropped(cls, route: str, context: str = "", count: int = 1) -> Outcome:
        """``count`` copies of ``route`` dropped because the mirror queue was full."""
        return cls(route, "dropped", context, count=count)

    @classmethod
    def shed(cls, route: str, context: str = "", count: int = 1) -> Outcome:
        """``count`` copies of ``route`` kept back by the adaptive load shedder."""
        return cls(route, "shed", context, count=count)

    def increments(self) -> dict[str, int]:
        if self.kind in ("matched", "mismatched"):
            return {"compared": self.count, self.kind: self.count}
        return {"shadow_errors" if self.kind == "shadow_error" else self.kind: self.count}

    def field_paths(self) -> tuple[str, ...]:
        return self.result.paths if self.result and not self.result.matched else ()

    def sample(self) -> dict[str, Any]:
        """The redacted, size-capped JSON document stored for a mismatch or error."""
        return {
            "at": self.at,
            "route": self.route,
            "context": self.context,
            "kind": self.kind,
            "error": self.error,
            "request": _capped(redact_request(self.request).to_dict()) if self.request else None,
            "primary": _capped(redact_response(self.primary).to_dict()) if self.primary else None,
            "candidate": (
                _capped(redact_response(self.candidate).to_dict()) if self.candidate else None
            ),
            "differences": self.result.to_dict()["differences"] if self.result else [],
        }


def _capped(document: dict[str, Any]) -> dict[str, Any]:
    if len(document.get("body_b64", "")) > _BODY_LIMIT:
        document = {**document, "body_b64": "", "body_truncated": True}
    return document


class ShadowResults(Protocol):
    """What the mirror, replay, report, export and gates need from a results store."""

    def record(self, outcome: Outcome) -> None: ...

    def record_many(self, outcomes: Iterable[Outcome]) -> None: ...

    def routes(self) -> dict[str, str]: ...

    def counts(
        self, *, route: str | None = None, context: str | None = None, since: float | None = None
    ) -> Counts: ...

    def series(self, route: str, *, since: float | None = None) -> list[tuple[float, Counts]]: ...

    def top_fields(
        self, route: str, *, since: float | None = None, limit: int = 10
    ) -> list[tuple[str, int]]: ...

    def samples(
        self, route: str, *, since: float | None = None, limit: int = 20
    ) -> list[dict[str, Any]]: ...

    def save_noise(self, route: str, paths: Iterable[str]) -> None: ...

    def noise(self) -> dict[str, tuple[str, ...]]: ...


class _Aggregates:
    """Rates, selection and time buckets shared by every store (built on counts/routes)."""

    bucket_seconds: int = 60

    def _bucket(self, at: float) -> int:
        """Start of the time bucket holding ``at`` (unix seconds)."""
        return int(at // self.bucket_seconds) * self.bucket_seconds

    def routes(self) -> dict[str, str]:
        raise NotImplementedError

    def route_counts(self, route: str, since: float | None) -> Counts:
        raise NotImplementedError

    def counts(
        self, *, route: str | None = None, context: str | None = None, since: float | None = None
    ) -> Counts:
        """Counters of one route, of every route of a context, or of everything."""
        total = Counts()
        for name in self._select(route, context):
            total = total + self.route_counts(name, since)
        return total

    def match_rate(
        self, *, route: str | None = None, context: str | None = None, since: float | None = None
    ) -> tuple[float | None, int]:
        """``(matched / compared, compared)`` for a route or a context since a time."""
        counts = self.counts(route=route, context=context, since=since)
        return counts.match_rate, counts.compared

    def _select(self, route: str | None, context: str | None) -> list[str]:
        known = self.routes()
        if route is not None:
            return [route] if route in known else []
        return sorted(name for name, ctx in known.items() if context is None or ctx == context)


class _SharedStore(_Aggregates):
    """A store several processes share: a key prefix, time buckets, retention, samples."""

    def __init__(
        self,
        *,
        prefix: str = DEFAULT_PREFIX,
        bucket_seconds: int = 60,
        retention_seconds: int = 14 * 86400,
        max_samples: int = 50,
    ) -> None:
        self.prefix = prefix
        self.bucket_seconds = bucket_seconds
        self.retention_seconds = retention_seconds
        self.max_samples = max_samples


class RedisShadowStore(_SharedStore):
    """Shadow results in Redis, shared by proxy replicas, the report and the gates."""

    def __init__(self, client: redis.Redis, **options: Any) -> None:
        super().__init__(**options)
        self.client = client

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisShadowStore:
        return cls(redis.Redis.from_url(url, decode_responses=True), **options)

    def _key(self, *parts: object) -> str:
        return ":".join([self.prefix, *map(str, parts)])

    def record(self, outcome: Outcome) -> None:
        """Count the outcome in its bucket; keep a redacted sample of mismatches and errors."""
        self.record_many([outcome])

    def record_many(self, outcomes: Iterable[Outcome]) -> None:
        """Several outcomes in one transaction (one round trip)."""
        cutoff = time.time() - self.retention_seconds
        with self.client.pipeline(transaction=True) as pipe:
            for outcome in outcomes:
                self._queue_writes(pipe, outcome, cutoff)
            pipe.execute()

    def _queue_writes(self, pipe: Any, outcome: Outcome, cutoff: float) -> None:
        bucket = self._bucket(outcome.at)
        route = outcome.route
        counters, fields = self._key("c", route, bucket), self._key("f", route, bucket)
        pipe.hset(self._key("routes"), route, outcome.context)
        pipe.zadd(self._key("b", route), {str(bucket): bucket})
        pipe.zremrangebyscore(self._key("b", route), "-inf", cutoff)
        for name, amount in outcome.increments().items():
            pipe.hincrby(counters, name, amount)
        pipe.expire(counters, self.retention_seconds)
        for path in outcome.field_paths():
            pipe.hincrby(fields, path, 1)
        pipe.expire(fields, self.retention_seconds)
        if outcome.kind in ("mismatched", "shadow_error"):
            samples = self._key("s", route)
            pipe.lpush(samples, json.dumps(outcome.sample()))
            pipe.ltrim(samples, 0, self.max_samples - 1)

    def routes(self) -> dict[str, str]:
        return dict(self.client.hgetall(self._key("routes")))  # type: ignore[arg-type]

    def _buckets(self, route: str, since: float | None) -> list[int]:
        low: float | str = "-inf" if since is None else self._bucket(since)
        found = self.client.zrangebyscore(self._key("b", route), low, "+inf")
        return [int(bucket) for bucket in found]  # type: ignore[union-attr]

    def _read_hashes(self, kind: str, route: str, buckets: list[int]) -> list[dict[str, str]]:
        with self.client.pipeline(transaction=False) as pipe:
            for bucket in buckets:
                pipe.hgetall(self._key(kind, route, bucket))
            return list(pipe.execute())

    def series(self, route: str, *, since: float | None = None) -> list[tuple[float, Counts]]:
        """Counters per time bucket, oldest first (for plotting the match rate)."""
        buckets = self._buckets(route, since)
        rows = self._read_hashes("c", route, buckets)
        return [
            (float(bucket), Counts(**{n: int(row.get(n, 0)) for n in COUNTERS}))
            for bucket, row in zip(buckets, rows, strict=True)
        ]

    def route_counts(self, route: str, since: float | None) -> Counts:
        total = Counts()
        for _, counts in self.series(route, since=since):
            total = total + counts
        return total

    def top_fields(
        self, route: str, *, since: float | None = None, limit: int = 10
    ) -> list[tuple[str, int]]:
        """The fields that differed most often, with their counts."""
        totals: Counter[str] = Counter()
        for row in self._read_hashes("f", route, self._buckets(route, since)):
            totals.update({path: int(count) for path, count in row.items()})
        return totals.most_common(limit)

    def samples(
        self, route: str, *, since: float | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        """Newest-first mismatch and error samples of ``route``."""
        raw = self.client.lrange(self._key("s", route), 0, self.max_samples - 1)
        found = [json.loads(item) for item in raw]  # type: ignore[union-attr]
        return [s for s in found if since is None or s["at"] >= since][:limit]

    def save_noise(self, route: str, paths: Iterable[str]) -> None:
        wanted = list(paths)
        if wanted:
            self.client.sadd(self._key("noise", route), *wanted)

    def noise(self) -> dict[str, tuple[str, ...]]:
        learned = {}
        for route in self.routes():
            members = self.client.smembers(self._key("noise", route))
            if members:
                learned[route] = tuple(sorted(members))  # type: ignore[arg-type]
        return learned

    def clear(self) -> int:
        """Delete every key under the prefix (tests, or starting a fresh comparison)."""
        keys = list(self.client.scan_iter(match=f"{self.prefix}:*", count=500))
        return int(self.client.delete(*keys)) if keys else 0  # type: ignore[arg-type]


class MemoryShadowStore(_Aggregates):
    """The same results kept in process (offline replay, tests)."""

    def __init__(self, *, bucket_seconds: int = 60, max_samples: int = 50) -> None:
        self.bucket_seconds = bucket_seconds
        self.max_samples = max_samples
        self._routes: dict[str, str] = {}
        self._counts: dict[str, dict[int, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
        self._fields: dict[str, dict[int, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
        self._samples: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._noise: dict[str, set[str]] = defaultdict(set)
        self._lock = threading.Lock()

    def record(self, outcome: Outcome) -> None:
        bucket = self._bucket(outcome.at)
        with self._lock:
            self._routes[outcome.route] = outcome.context
            self._counts[outcome.route][bucket].update(outcome.increments())
            self._fields[outcome.route][bucket].update(outcome.field_paths())
            if outcome.kind in ("mismatched", "shadow_error"):
                samples = self._samples[outcome.route]
                samples.insert(0, outcome.sample())
                del samples[self.max_samples :]

    def record_many(self, outcomes: Iterable[Outcome]) -> None:
        for outcome in outcomes:
            self.record(outcome)

    def routes(self) -> dict[str, str]:
        with self._lock:
            return dict(self._routes)

    def _rows(
        self, table: dict[str, dict[int, Counter[str]]], route: str, since: float | None
    ) -> list[tuple[int, Counter[str]]]:
        low = None if since is None else self._bucket(since)
        with self._lock:
            rows = sorted(table.get(route, {}).items())
        return [(bucket, row) for bucket, row in rows if low is None or bucket >= low]

    def series(self, route: str, *, since: float | None = None) -> list[tuple[float, Counts]]:
        return [
            (float(bucket), Counts(**{n: row[n] for n in COUNTERS}))
            for bucket, row in self._rows(self._counts, route, since)
        ]

    def route_counts(self, route: str, since: float | None) -> Counts:
        total = Counts()
        for _, counts in self.series(route, since=since):
            total = total + counts
        return total

    def top_fields(
        self, route: str, *, since: float | None = None, limit: int = 10
    ) -> list[tuple[str, int]]:
        totals: Counter[str] = Counter()
        for _, row in self._rows(self._fields, route, since):
            totals.update(row)
        return totals.most_common(limit)

    def samples(
        self, route: str, *, since: float | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        with self._lock:
            found = list(self._samples.get(route, []))
        return [s for s in found if since is None or s["at"] >= since][:limit]

    def save_noise(self, route: str, paths: Iterable[str]) -> None:
        with self._lock:
            self._noise[route].update(paths)

    def noise(self) -> dict[str, tuple[str, ...]]:
        with self._lock:
            return {route: tuple(sorted(p)) for route, p in self._noise.items() if p}


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str | None, *, now: float | None = None) -> float | None:
    """``30m``, ``6h``, ``2d`` (ago) or an ISO 8601 time -> unix seconds; None for None."""
    if text is None or not text.strip():
        return None
    match = _DURATION.match(text)
    if match:
        return (time.time() if now is None else now) - float(match[1]) * _UNITS[match[2]]
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"--since {text!r}: use 30m, 6h, 2d or an ISO 8601 time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
