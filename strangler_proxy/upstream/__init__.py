"""Upstreams: forwarding a request to the service behind a route, and protecting it.

Modules, in the order a request meets them:

    forwarder   a pool per endpoint, round-robin over an upstream's endpoints (the next
                one at once when one cannot be connected to), retry a safe request on a
                fresh connection, translate client errors into the edge's errors, stream
                the answer back
    breaker     a circuit breaker per upstream (closed, open, half-open)
    _client     keep-alive HTTP/1.1 client: an asyncio protocol per connection + httptools

    forwarder = Forwarder(buffer_bytes=64 * 1024)
    forwarder.sync(table)
    status = await forwarder.exchange("monolith", outgoing, send)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strangler_proxy.upstream.breaker import BreakerState, CircuitBreaker, StateListener
    from strangler_proxy.upstream.forwarder import (
        Forwarder,
        Outgoing,
        PoolLimits,
        StreamBroken,
        UpstreamPool,
    )
else:
    from migration_plans.core.exports import lazy_exports

    __getattr__ = lazy_exports(
        __name__,
        {
            "forwarder": ["Forwarder", "Outgoing", "PoolLimits", "StreamBroken", "UpstreamPool"],
            "breaker": ["BreakerState", "CircuitBreaker", "StateListener"],
        },
    )

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "Forwarder",
    "Outgoing",
    "PoolLimits",
    "StateListener",
    "StreamBroken",
    "UpstreamPool",
]
