"""Adaptive load shedding: mirror fewer copies while the proxy's event loop is saturated.

Every copy the proxy mirrors costs it CPU (the response is kept, pickled and handed
over) and costs the machine more (the sidecar's and the candidate's work). When the
cores are saturated, that CPU comes out of the primary's latency. :class:`LoopLoad`
wakes every ``interval`` seconds in the proxy's event loop and measures two things
about the last interval:

- the loop's **load**: the share of the time its thread ran, out of the time it
  was not kept waiting for a core by other processes (run-queue wait from Linux
  ``/proc/thread-self/schedstat``; elsewhere none is assumed). A loop that mostly
  waits for sockets (one request at a time) sits low; one that always has ready work
  (saturated by the primary's traffic) sits near 1. Leaving out the run-queue wait
  keeps a machine busy with other work from looking like a busy proxy: shedding
  copies would not give that time back;
- how many requests the proxy is serving (``in_flight``, counted by the app): one
  request at a time never waits for the loop, however busy each one keeps it (at
  c=1 the proxy's own work is a large share of each round trip);
- the loop's **lag**: how late the timer fired (reported, not acted on: a single
  sample is dominated by the machine's noise).

:class:`ShedController` smooths the load (an exponentially weighted moving average)
and turns it into the share of admitted copies to mirror, AIMD-style, with a dead band
for hysteresis:

- smoothed load above ``load_high`` while more than ``min_in_flight`` requests are
  in flight (smoothed too): the share is multiplied by ``rate_backoff`` (below
  ``rate_floor`` it becomes 0: nothing is mirrored);
- load below ``load_low``, or requests not queueing, for ``recover_after`` seconds in
  a row: the share grows by ``rate_step`` per sample (up to 1);
- in between: it stays where it is.

The route's configured ``sample_rate`` stays the upper bound: a copy is mirrored when
the route's sample admits it *and* :meth:`ShedController.keep` keeps it; one the route
admitted and the controller did not is counted as ``shed``.

    controller = ShedController(settings)
    controller.observe(0.95)       # the loop ran 95% of the last interval: halve
    if controller.keep(): ...      # mirror this copy
    load = LoopLoad(controller, settings.interval)
    load.start()                   # inside the running loop; await load.stop() at shutdown
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LoopLoad", "ShedController", "ShedSettings", "thread_times"]

_SCHEDSTAT = Path("/proc/thread-self/schedstat")


@dataclass(frozen=True)
class ShedSettings:
    """The shedder's thresholds and steps (``STRANGLER_SHADOW_*``: the field name in
    capitals, e.g. ``STRANGLER_SHADOW_LOAD_HIGH``; ``STRANGLER_SHADOW_ADAPTIVE=0`` turns
    it off)."""

    adaptive: bool = True
    interval: float = 0.05
    load_high: float = 0.5
    load_low: float = 0.35
    smoothing: float = 0.3
    rate_backoff: float = 0.5
    rate_step: float = 0.05
    rate_floor: float = 0.02
    recover_after: float = 1.0
    min_in_flight: float = 1.5

    def __post_init__(self) -> None:
        if not 0 <= self.load_low < self.load_high:
            raise ValueError(
                f"STRANGLER_SHADOW_LOAD_LOW={self.load_low:g} must be below "
                f"STRANGLER_SHADOW_LOAD_HIGH={self.load_high:g} (the dead band between them "
                "keeps the share steady)"
            )
        if self.recover_after < 0:
            raise ValueError(
                f"STRANGLER_SHADOW_RECOVER_AFTER={self.recover_after:g}: must be >= 0 (seconds)"
            )
        for name in ("smoothing", "rate_backoff", "rate_step", "interval"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(
                    f"STRANGLER_SHADOW_{name.upper()}={value:g}: use a value in (0, 1]"
                )


class ShedController:
    """The share of admitted copies to mirror (``level``, 0..1), driven by load samples.

    Deterministic given its inputs: :meth:`observe` takes one load sample (the loop's
    busy share of an interval, 0..1) and returns the new level; :meth:`keep` draws from
    ``sample`` only while the level is strictly between 0 and 1.
    """

    def __init__(
        self, settings: ShedSettings | None = None, *, sample: Callable[[], float] = random.random
    ) -> None:
        self.settings = settings or ShedSettings()
        self.level = 1.0
        self.load = 0.0  # smoothed
        self.lag = 0.0  # the last timer lag seen (seconds), for the metrics
        self.in_flight = 0.0  # smoothed
        self._sample = sample
        self._calm = 0  # calm samples in a row (load below load_low, or no queue)
        self._calm_needed = max(1, round(self.settings.recover_after / self.settings.interval))

    def observe(self, load: float, *, lag: float = 0.0, in_flight: float = math.inf) -> float:
        """Take one sample (``in_flight``: requests being served; unknown: infinite);
        move the level (multiplicative down, additive up)."""
        s = self.settings
        self.lag = lag
        self.load += s.smoothing * (min(1.0, max(0.0, load)) - self.load)
        if math.isinf(in_flight) or math.isinf(self.in_flight):
            self.in_flight = in_flight
        else:
            self.in_flight += s.smoothing * (in_flight - self.in_flight)
        queueing = self.in_flight > s.min_in_flight
        calm = self.load < s.load_low or not queueing
        self._calm = self._calm + 1 if calm else 0
        if self.load > s.load_high and queueing:
            self.level *= s.rate_backoff
            if self.level < s.rate_floor:
                self.level = 0.0
        elif self._calm >= self._calm_needed:
            self.level = min(1.0, self.level + s.rate_step)
        return self.level

    def keep(self) -> bool:
        """Whether to mirror one copy the route's own sample rate admitted."""
        if self.level >= 1.0:
            return True
        return self.level > 0.0 and self._sample() < self.level


def thread_times() -> tuple[float, float]:
    """Seconds the calling thread has run and waited in the run queue for a core
    (Linux schedstat; elsewhere its CPU time and no wait)."""
    try:
        ran, waited, _ = _SCHEDSTAT.read_bytes().split()
    except (OSError, ValueError):
        return time.thread_time(), 0.0
    return int(ran) / 1e9, int(waited) / 1e9


class LoopLoad:
    """A task in the running event loop that feeds its load (and the timer's lag) to a
    :class:`ShedController` every ``interval`` seconds, then calls ``on_sample`` (the
    metrics)."""

    def __init__(
        self,
        controller: ShedController,
        interval: float,
        on_sample: Callable[[ShedController], None] | None = None,
        *,
        times: Callable[[], tuple[float, float]] = thread_times,
        in_flight: Callable[[], float] = lambda: math.inf,
    ) -> None:
        self.controller = controller
        self.interval = interval
        self.on_sample = on_sample
        self._times = times
        self._in_flight = in_flight
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start measuring in the running loop (idempotent; without one, nothing starts)."""
        if self.running:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._task = loop.create_task(self._run(), name="shadow-load")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        # time.monotonic, not loop.time(): uvloop's clock and timers have 1 ms steps.
        began, (ran, waited) = time.monotonic(), self._times()
        while True:
            await asyncio.sleep(self.interval)
            now, (ran_now, waited_now) = time.monotonic(), self._times()
            lag = max(0.0, now - began - self.interval)
            available = now - began - (waited_now - waited)
            load = (ran_now - ran) / max(available, 1e-6)
            self.controller.observe(load, lag=lag, in_flight=self._in_flight())
            began, ran, waited = now, ran_now, waited_now
            if self.on_sample is not None:
                self.on_sample(self.controller)
