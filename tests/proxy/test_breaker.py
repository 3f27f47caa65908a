"""Circuit breaker state machine on a fake clock."""

from __future__ import annotations

from strangler_proxy.routetable.model import BreakerSettings
from strangler_proxy.upstream.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, changes: list[BreakerState] | None = None) -> CircuitBreaker:
    settings = BreakerSettings(window=10, min_calls=4, failure_rate=0.5, cooldown=5)
    listener = (lambda _name, state: changes.append(state)) if changes is not None else None
    return CircuitBreaker("catalog", settings, clock=clock, on_change=listener)


def test_opens_at_failure_rate_after_min_calls() -> None:
    clock = Clock()
    b = breaker(clock)
    for ok in (False, False, True):
        assert b.allow()
        b.record(ok)
    assert b.state is BreakerState.CLOSED  # 3 calls < min_calls
    b.record(False)
    assert b.state is BreakerState.OPEN
    assert not b.allow()


def test_single_probe_after_cooldown_then_close() -> None:
    clock = Clock()
    changes: list[BreakerState] = []
    b = breaker(clock, changes)
    for _ in range(4):
        b.record(False)
    clock.now += 4.9
    assert not b.allow()
    clock.now += 0.2
    assert b.allow()  # the probe
    assert b.state is BreakerState.HALF_OPEN
    assert not b.allow()  # only one probe at a time
    b.record(True)
    assert b.state is BreakerState.CLOSED and b.allow()
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]
    assert b.snapshot()["window_calls"] == 0


def test_failed_probe_reopens_and_lost_probe_is_replaced() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(4):
        b.record(False)
    clock.now += 5
    assert b.allow()
    b.record(False)
    assert b.state is BreakerState.OPEN and not b.allow()
    clock.now += 5
    assert b.allow()  # probe that never reports back
    clock.now += 5
    assert b.allow()  # replaced after another cooldown
    assert b.snapshot()["times_opened"] == 2


def test_window_forgets_old_outcomes() -> None:
    clock = Clock()
    b = breaker(clock)
    for ok in [True] * 10 + [False] * 4:
        b.record(ok)
    assert b.state is BreakerState.CLOSED  # 4 of the last 10 failed
    b.record(False)
    assert b.state is BreakerState.OPEN  # 5 of the last 10


def test_late_results_while_open_are_ignored() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(4):
        b.record(False)
    b.record(True)
    assert b.state is BreakerState.OPEN
