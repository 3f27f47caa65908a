"""Prometheus metrics of one proxy, in their own registry (served by the admin API).

strangler_proxy_requests_total{route, upstream, method, status}
strangler_proxy_request_duration_seconds{route, upstream}   (histogram)
strangler_proxy_errors_total{route, upstream, code}         (errors the proxy made)
strangler_proxy_canary_assignments_total{route, upstream}
strangler_proxy_fallbacks_total{route, from_upstream, to_upstream}
strangler_proxy_breaker_state{upstream}                     (0 closed, 1 half-open, 2 open)
strangler_proxy_breaker_transitions_total{upstream, state}
strangler_proxy_reloads_total{result}                       (ok | failed)
strangler_proxy_reload_failing                              (1 while the file on disk is bad)
strangler_proxy_table_info{version, hash}
strangler_proxy_fence_held{context}                         (writes held by a fence now)
strangler_proxy_fence_hold_seconds{context}                 (histogram: how long each waited)
strangler_proxy_fence_released_total{context, outcome}      (lifted | expired | overflow | stopped)
strangler_proxy_phase_epoch{context}                        (the published epoch served)

The mirror's series share this registry (:class:`strangler_proxy.shadow.engine.MirrorMetrics`):

strangler_shadow_outcomes_total{route, outcome}   (queued, matched, mismatched, shadow_error,
                                                   dropped, shed, sampled_out, skipped_unsafe)
strangler_shadow_queue_depth, strangler_shadow_sidecar_deaths_total
strangler_shadow_shed_level                       (share of admitted copies mirrored, 0..1)
strangler_shadow_loop_load                        (the event loop's busy share the shedder sees)
strangler_shadow_loop_lag_seconds
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from strangler_proxy.edge.limits import ConnectionGate
from strangler_proxy.upstream import BreakerState

_STATE_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_HOLD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60)


class ProxyMetrics:
    """All metric families of the proxy."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}
        r = self.registry
        p = "strangler_proxy_"
        self.requests = Counter(
            p + "requests",
            "Requests answered.",
            ["route", "upstream", "method", "status"],
            registry=r,
        )
        self.duration = Histogram(
            p + "request_duration_seconds",
            "Time to answer, proxy included.",
            ["route", "upstream"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            p + "errors", "Errors made by the proxy.", ["route", "upstream", "code"], registry=r
        )
        self.canary = Counter(
            p + "canary_assignments", "Canary split outcomes.", ["route", "upstream"], registry=r
        )
        self.fallbacks = Counter(
            p + "fallbacks",
            "Reads sent to the fallback upstream.",
            ["route", "from_upstream", "to_upstream"],
            registry=r,
        )
        self.breaker_state = Gauge(
            p + "breaker_state", "0 closed, 1 half-open, 2 open.", ["upstream"], registry=r
        )
        self.breaker_transitions = Counter(
            p + "breaker_transitions", "Breaker state changes.", ["upstream", "state"], registry=r
        )
        self.reloads = Counter(p + "reloads", "Route table reloads.", ["result"], registry=r)
        self.reload_failing = Gauge(
            p + "reload_failing", "1 while the route file on disk is refused.", registry=r
        )
        self.table_info = Gauge(
            p + "table_info", "The route table serving.", ["version", "hash"], registry=r
        )
        self.fence_held = Gauge(
            p + "fence_held", "Writes held by a fence now.", ["context"], registry=r
        )
        self.fence_hold = Histogram(
            p + "fence_hold_seconds",
            "How long each held write waited for its fence.",
            ["context"],
            buckets=_HOLD_BUCKETS,
            registry=r,
        )
        self.fence_released = Counter(
            p + "fence_released",
            "Held writes let go: fence lifted, fence expired, or refused (queue full).",
            ["context", "outcome"],
            registry=r,
        )
        self.phase_epoch = Gauge(
            p + "phase_epoch", "The published phase epoch served.", ["context"], registry=r
        )
        self.edge_connections = Gauge(
            p + "edge_connections", "Client connections this process holds.", registry=r
        )
        self.edge_refusals = Counter(
            p + "edge_refusals",
            "Client connections and requests refused at the edge (cap, timeout, size, version).",
            ["limit"],
            registry=r,
        )
        self.edge_evictions = Counter(
            p + "edge_evictions",
            "Idle client connections closed to make room at max_connections.",
            registry=r,
        )

    def watch_edge(self, gate: ConnectionGate) -> None:
        """Report ``gate``'s connections, refusals and evictions (this process's edge)."""
        self.edge_connections.set_function(lambda: len(gate.admitted))
        gate.on_refusal = lambda limit: self.edge_refusals.labels(limit).inc()
        gate.on_eviction = self.edge_evictions.inc

    def observe(self, route: str, upstream: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request (labelled children cached: this is the hot path)."""
        key = (route, upstream, method, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(route, upstream, method, str(status)),
                self.duration.labels(route, upstream),
            )
            if len(self._children) < 10_000:
                self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def breaker_changed(self, upstream: str, state: BreakerState) -> None:
        self.breaker_state.labels(upstream).set(_STATE_VALUE[state])
        self.breaker_transitions.labels(upstream, str(state)).inc()

    def table_loaded(self, version: str, table_hash: str) -> None:
        self.table_info.clear()
        self.table_info.labels(version, table_hash).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
