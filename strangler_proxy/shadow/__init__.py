"""Shadow traffic: mirror live requests to a candidate, compare, record, replay.

Modules, in the order a copy travels:

    shadowing        the proxy's side: which routes mirror or record, the response tap
    _shedding        adaptive load shedding: fewer copies while the proxy's event loop is busy
    settings         ``STRANGLER_SHADOW_*``, read once (mode, queue, record file)
    _sidecar_client  hands copies to the mirror sidecar process, never waits
    _wire            the frames between the proxy and its sidecar
    _sidecar         the sidecar process (``python -m strangler_proxy.shadow._sidecar``)
    engine           the mirror: bounded queue, workers, send, compare, record outcomes
    exchange         captured requests and responses
    _compare         response comparison under a route's rules
    _noise           noise calibration against a second primary
    _redaction       secrets out of everything that is stored
    store            results: per-route counters by time bucket, top fields, samples (Redis, memory)
    _store_sql       the same results in the control-plane database
    backend          which store a process uses; ``match_rate`` for the plan gates
    _recorder        a sample of live traffic written as a mitmproxy flow file
    _captures        reading flow files (through ``_flowfile`` under mitmproxy) and HAR
    _replay          offline replay of a capture against two upstreams
    _report          the shadow report (table, JSON, HTML)
    _export_tests    regression tests from stored mismatches
    cli              ``strangler shadow`` commands

    shadowing = Shadowing.from_env(registry=registry)
    shadowing.sync(table)
    shadowing.start()                      # in each worker (ASGI lifespan startup)
    rate, compared = match_rate(context="catalog")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strangler_proxy.shadow._captures import CapturedExchange, CaptureError, read_capture
    from strangler_proxy.shadow._compare import CompareResult, CompareRules, compare_responses
    from strangler_proxy.shadow._noise import NoiseLearner
    from strangler_proxy.shadow._recorder import FlowRecorder
    from strangler_proxy.shadow._replay import ReplayOptions, ReplaySummary, replay
    from strangler_proxy.shadow._store_sql import SqlShadowStore
    from strangler_proxy.shadow.backend import close_store, match_rate, open_store, store_url
    from strangler_proxy.shadow.cli import shadow_app
    from strangler_proxy.shadow.engine import (
        SHADOW_HEADER,
        Mirror,
        MirrorEngine,
        MirrorMetrics,
        ShadowRoute,
        Submitted,
        outcome_totals,
    )
    from strangler_proxy.shadow.exchange import CapturedRequest, CapturedResponse
    from strangler_proxy.shadow.settings import ShadowSettings
    from strangler_proxy.shadow.shadowing import Shadowing, Tap, shadow_routes
    from strangler_proxy.shadow.store import (
        DEFAULT_PREFIX,
        Counts,
        MemoryShadowStore,
        Outcome,
        OutcomeKind,
        RedisShadowStore,
        ShadowResults,
        parse_since,
    )
else:
    from migration_plans.core.exports import lazy_exports

    __getattr__ = lazy_exports(
        __name__,
        {
            "shadowing": ["Shadowing", "Tap", "shadow_routes"],
            "settings": ["ShadowSettings"],
            "engine": [
                "SHADOW_HEADER",
                "Mirror",
                "MirrorEngine",
                "MirrorMetrics",
                "ShadowRoute",
                "Submitted",
                "outcome_totals",
            ],
            "exchange": ["CapturedRequest", "CapturedResponse"],
            "_compare": ["CompareResult", "CompareRules", "compare_responses"],
            "_noise": ["NoiseLearner"],
            "store": [
                "DEFAULT_PREFIX",
                "Counts",
                "MemoryShadowStore",
                "Outcome",
                "OutcomeKind",
                "RedisShadowStore",
                "ShadowResults",
                "parse_since",
            ],
            "_store_sql": ["SqlShadowStore"],
            "backend": ["close_store", "match_rate", "open_store", "store_url"],
            "_recorder": ["FlowRecorder"],
            "_captures": ["CaptureError", "CapturedExchange", "read_capture"],
            "_replay": ["ReplayOptions", "ReplaySummary", "replay"],
            "cli": ["shadow_app"],
        },
    )

__all__ = [
    "DEFAULT_PREFIX",
    "SHADOW_HEADER",
    "CaptureError",
    "CapturedExchange",
    "CapturedRequest",
    "CapturedResponse",
    "CompareResult",
    "CompareRules",
    "Counts",
    "FlowRecorder",
    "MemoryShadowStore",
    "Mirror",
    "MirrorEngine",
    "MirrorMetrics",
    "NoiseLearner",
    "Outcome",
    "OutcomeKind",
    "RedisShadowStore",
    "ReplayOptions",
    "ReplaySummary",
    "ShadowResults",
    "ShadowRoute",
    "ShadowSettings",
    "Shadowing",
    "SqlShadowStore",
    "Submitted",
    "Tap",
    "close_store",
    "compare_responses",
    "match_rate",
    "open_store",
    "outcome_totals",
    "parse_since",
    "read_capture",
    "replay",
    "shadow_app",
    "shadow_routes",
    "store_url",
]
