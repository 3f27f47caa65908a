"""Circuit breaker per upstream: closed -> open -> half-open -> closed.

Closed: outcomes go into a window of the last ``window`` calls; once it holds at
least ``min_calls`` and the failure rate reaches ``failure_rate``, the breaker opens.
Open: calls are refused until ``cooldown`` has passed, then one probe is let through
(half-open). The probe's success closes the breaker with an empty window; its failure
opens it again. A probe that never reports back is replaced after another cooldown.

    breaker = CircuitBreaker("catalog", BreakerSettings())
    if breaker.allow():
        breaker.record(ok=response.status < 500)
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum

from strangler_proxy.routetable.model import BreakerSettings


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


StateListener = Callable[[str, BreakerState], None]


class CircuitBreaker:
    """Failure-rate breaker with a single half-open probe. Not thread-safe (one event loop)."""

    def __init__(
        self,
        name: str,
        settings: BreakerSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: StateListener | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.clock = clock
        self.on_change = on_change
        self.state = BreakerState.CLOSED
        self.window: deque[bool] = deque(maxlen=settings.window)
        self.changed_at = clock()
        self.opened_count = 0

    def configure(self, settings: BreakerSettings) -> None:
        """Take new settings from a reloaded table, keeping the current state."""
        if settings != self.settings:
            self.settings = settings
            self.window = deque(self.window, maxlen=settings.window)

    def allow(self) -> bool:
        """True when a call may go to the upstream now."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.clock() - self.changed_at < self.settings.cooldown:
            return False
        self._move(BreakerState.HALF_OPEN)  # a new probe (or one to replace a lost probe)
        return True

    def record(self, ok: bool) -> None:
        """Report the outcome of a call that :meth:`allow` let through."""
        if self.state is BreakerState.HALF_OPEN:
            self._move(BreakerState.CLOSED if ok else BreakerState.OPEN)
            return
        if self.state is BreakerState.OPEN:
            return
        self.window.append(ok)
        failures = self.window.count(False)
        calls = len(self.window)
        if calls >= self.settings.min_calls and failures / calls >= self.settings.failure_rate:
            self._move(BreakerState.OPEN)

    def reset(self) -> None:
        """Close the breaker and forget the failures it counted (the upstream is known good)."""
        if self.state is not BreakerState.CLOSED:
            self._move(BreakerState.CLOSED)
        else:
            self.window.clear()

    def snapshot(self) -> dict[str, object]:
        """State for the admin API."""
        calls = len(self.window)
        return {
            "state": str(self.state),
            "since_seconds": round(self.clock() - self.changed_at, 3),
            "window_calls": calls,
            "window_failures": self.window.count(False),
            "times_opened": self.opened_count,
        }

    def _move(self, state: BreakerState) -> None:
        self.changed_at = self.clock()
        if state is BreakerState.CLOSED:
            self.window.clear()
        if state is BreakerState.OPEN:
            self.opened_count += 1
        if state is not self.state:
            self.state = state
            if self.on_change is not None:
                self.on_change(self.name, state)
