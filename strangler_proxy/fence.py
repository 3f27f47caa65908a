"""The write fence: a context's writes wait while the control plane moves its source of truth.

While a context is fenced, its unsafe requests wait in the proxy (before their body is
read) until a later epoch lifts the fence or the fence's deadline passes; then they go
on, to wherever the route table sends them by then. Unsafe requests already on their way
are counted per context, so the proxy acknowledges a fenced epoch only once none of them
is still in flight. Everything here runs on the proxy's event loop.

    fence = WriteFence(capacity=1000, metrics=metrics)
    fence.close_writes("catalog", epoch=7, until=time.time() + 3)
    gate = fence.gates.get("catalog")       # the hot path: None unless fenced
    outcome = await fence.hold(gate)        # FenceOverflow when ``capacity`` are waiting
    fence.open_writes("catalog")            # releases the held requests
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from strangler_proxy.edge.errors import FenceOverflow
from strangler_proxy.metrics import ProxyMetrics

__all__ = ["Gate", "Outcome", "WriteFence"]

log = logging.getLogger("strangler.proxy.fence")


class Outcome(StrEnum):
    """How a held request was let go."""

    LIFTED = "lifted"
    """A later epoch lifted the fence."""
    EXPIRED = "expired"
    """The fence's deadline passed first (its control plane gave up or died)."""
    OVERFLOW = "overflow"
    """Refused with 503: ``capacity`` requests were held already."""
    STOPPED = "stopped"
    """Refused with 503: the proxy stopped while the fence held."""


class Gate:
    """One context's raised fence; its held requests wait on :attr:`released`."""

    __slots__ = ("context", "epoch", "held", "outcome", "released", "timer", "until")

    def __init__(self, context: str, epoch: int, until: float | None) -> None:
        self.context = context
        self.epoch = epoch
        self.until = until
        self.held = 0
        self.outcome = Outcome.LIFTED
        self.released = asyncio.Event()
        self.timer: asyncio.TimerHandle | None = None


class WriteFence:
    """Held writes per context, bounded by ``capacity`` per process, and writes in flight.

    :attr:`gates` holds only the contexts fenced now, so the request path's check for a
    context that is not fenced is one dict lookup.
    """

    def __init__(
        self,
        *,
        capacity: int,
        metrics: ProxyMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.capacity = capacity
        self.metrics = metrics
        self.clock = clock
        self.gates: dict[str, Gate] = {}
        self.held = 0
        self.in_flight: dict[str, int] = {}
        self._drained: dict[str, asyncio.Event] = {}
        self._stopped = False

    # -- the control side ----------------------------------------------------------

    def close_writes(self, context: str, epoch: int, until: float | None) -> Gate:
        """Fence ``context``'s writes until :meth:`open_writes` or the wall clock passes ``until``.

        A context fenced already keeps its gate (and its held requests) under the new
        epoch and deadline.
        """
        gate = self.gates.get(context)
        if gate is None:
            gate = self.gates[context] = Gate(context, epoch, until)
        gate.epoch, gate.until = epoch, until
        if gate.timer is not None:
            gate.timer.cancel()
            gate.timer = None
        if until is not None:
            delay = max(0.0, until - self.clock())
            gate.timer = asyncio.get_running_loop().call_later(delay, self._expire, gate)
        return gate

    def open_writes(self, context: str, outcome: Outcome = Outcome.LIFTED) -> int:
        """Lift ``context``'s fence; the number of requests it releases."""
        gate = self.gates.pop(context, None)
        if gate is None:
            return 0
        self._release(gate, outcome)
        return gate.held  # they wake after this call

    def stop(self) -> None:
        """Refuse every held request with 503 (the proxy is stopping) and fence no more."""
        self._stopped = True
        for context in list(self.gates):
            self.open_writes(context, Outcome.STOPPED)

    def _expire(self, gate: Gate) -> None:
        if self.gates.get(gate.context) is not gate:
            return
        del self.gates[gate.context]
        if gate.held:
            log.warning(
                "write fence of %s (epoch %d) expired: releasing %d held writes",
                gate.context,
                gate.epoch,
                gate.held,
                extra={"event": "fence_expired", "context": gate.context, "epoch": gate.epoch},
            )
        self._release(gate, Outcome.EXPIRED)

    @staticmethod
    def _release(gate: Gate, outcome: Outcome) -> None:
        if gate.timer is not None:
            gate.timer.cancel()
        gate.outcome = outcome
        gate.released.set()

    # -- the request side ----------------------------------------------------------

    async def hold(self, gate: Gate) -> Outcome:
        """Wait until ``gate`` is released; :class:`FenceOverflow` when no room is left."""
        context = gate.context
        if self.held >= self.capacity or self._stopped:
            self._count(context, Outcome.STOPPED if self._stopped else Outcome.OVERFLOW)
            raise FenceOverflow()
        self.held += 1
        gate.held += 1
        self._gauge(context, 1)
        started = time.perf_counter()
        try:
            await gate.released.wait()
        finally:
            self.held -= 1
            gate.held -= 1
            self._gauge(context, -1)
        if self.metrics is not None:
            self.metrics.fence_hold.labels(context).observe(time.perf_counter() - started)
        self._count(context, gate.outcome)
        if gate.outcome is Outcome.STOPPED:
            raise FenceOverflow("The proxy is stopping; retry shortly.")
        return gate.outcome

    def enter(self, context: str) -> None:
        """An unsafe request of ``context`` passed the fence and is on its way."""
        self.in_flight[context] = self.in_flight.get(context, 0) + 1

    def leave(self, context: str) -> None:
        """That request is done (answered, failed or abandoned)."""
        left = self.in_flight[context] - 1
        self.in_flight[context] = left
        if left == 0 and (drained := self._drained.pop(context, None)) is not None:
            drained.set()

    async def drained(self, context: str, timeout: float | None) -> bool:
        """Whether no unsafe request of ``context`` is in flight, waiting up to ``timeout`` s."""
        if not self.in_flight.get(context):
            return True
        if timeout is not None and timeout <= 0:
            return False
        event = self._drained.setdefault(context, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def describe(self, context: str) -> dict[str, Any]:
        """The fence of ``context`` now: holding, epoch, deadline, held and in flight."""
        gate = self.gates.get(context)
        return {
            "holding": gate is not None,
            "fence_epoch": None if gate is None else gate.epoch,
            "fence_until": None if gate is None else gate.until,
            "held": 0 if gate is None else gate.held,
            "writes_in_flight": self.in_flight.get(context, 0),
        }

    def _gauge(self, context: str, change: int) -> None:
        if self.metrics is not None:
            self.metrics.fence_held.labels(context).inc(change)

    def _count(self, context: str, outcome: Outcome) -> None:
        if self.metrics is not None:
            self.metrics.fence_released.labels(context, outcome.value).inc()
