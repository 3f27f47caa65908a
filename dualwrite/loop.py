"""The relay loop (``strangler dualwrite relay CONTEXT``): apply events as soon as they commit.

PostgreSQL outboxes announce new events with ``NOTIFY strangler_outbox`` (the capture
trigger, :class:`~dualwrite.outbox.OutboxSink`), so the loop wakes at once; SQLite is
polled. Two modes:

- ``inline`` (default): the loop applies each batch itself; an event that fails is
  handed to Celery (``dualwrite.apply_key``) with exponential backoff, its key waits.
- ``celery``: the loop only hands keys to Celery workers (scale-out); with
  ``partitions`` > 1 it hands out batches instead: one ``apply_partition`` task per
  partition with pending events, each applying that partition's next batch under its
  locks (:mod:`dualwrite.partitions`), so the workers drain partitions side by side.

Either way a sweeper re-dispatches keys whose retry task was lost (broker restarted
empty, worker killed) once they have waited ``stale_after`` seconds.

With ``phase_url`` the loop follows the context's published phase (:mod:`dualwrite.live`):
a newer epoch switches the relay's phase between passes (a pass never straddles two
phases) and is acknowledged once no pass of the old phase is still applying. A lane
whose direction the new phase does not sync leaves its events pending until a phase
that syncs it comes back.

    RelayLoop(Relay(RelaySettings.from_env("catalog")), phase_url=control_db_url()).run(stop)
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from itertools import groupby
from typing import Any

import psycopg

from dualwrite.config import Direction, RelaySettings
from dualwrite.events import Event
from dualwrite.exceptions import ApplyFailed, StoreUnavailable
from dualwrite.live import LivePhase, PhaseGate
from dualwrite.partitions import Partition
from dualwrite.relay import Relay
from migration_plans.core.database import libpq_url
from migration_plans.core.live_phase import PhaseState
from migration_plans.core.outbox import NOTIFY_CHANNEL

log = logging.getLogger("dualwrite.loop")

Dispatcher = Callable[..., bool]

IDLE_RECHECK_S = 1.0
"""An idle lane is woken by a switch; this only bounds how late it sees ``stop``."""


PartitionDispatcher = Callable[[str, Direction, Partition], bool]

SPREAD_REDISPATCH_S = 1.0
"""Celery mode with partitions: a partition with pending events gets a new task at most
this often from the loop (its tasks send the next one themselves while a backlog lasts;
duplicates only take turns under the partition's locks)."""


def _default_partition_dispatcher(context: str, direction: Direction, partition: Partition) -> bool:
    # lazy: dualwrite.tasks builds the Celery app at import; inline relays never need it
    from dualwrite.tasks import dispatch_partition

    return dispatch_partition(context, direction, partition)


def _default_dispatcher(*args: Any, **kwargs: Any) -> bool:
    # lazy: dualwrite.tasks builds the Celery app at import; inline relays never need it
    from dualwrite.tasks import dispatch

    return dispatch(*args, **kwargs)


class Waiter:
    """Sleeps until a PostgreSQL outbox NOTIFYs or ``timeout`` passes (SQLite: just sleeps)."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = [url for url in urls if url.startswith(("postgresql", "postgres"))]
        self.connections: dict[str, psycopg.Connection[Any]] = {}

    def connect(self) -> None:
        """LISTEN on every PostgreSQL URL not listened to yet (again after a lost connection)."""
        for url in self.urls:
            if url in self.connections and not self.connections[url].closed:
                continue
            with suppress(psycopg.Error):
                conn = psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=3)
                conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                self.connections[url] = conn

    def wait(self, timeout: float) -> None:
        """Return when a NOTIFY arrived since the last wait, or after ``timeout`` seconds."""
        self.connect()
        live = [conn for conn in self.connections.values() if not conn.closed]
        if not live:
            time.sleep(timeout)
            return
        with suppress(OSError, ValueError):
            select.select([conn.fileno() for conn in live], [], [], timeout)
        for conn in live:
            try:
                for _ in conn.notifies(timeout=0, stop_after=1000):
                    pass
            except psycopg.Error:
                conn.close()

    def close(self) -> None:
        for conn in self.connections.values():
            conn.close()


class RelayLoop:
    """Drives a :class:`Relay`: batches, failure hand-off to Celery, sweeping, waiting.

    ``phase_url``: the control database whose published phase of the relay's context
    the loop follows (:class:`~dualwrite.live.LivePhase`); None serves the settings'
    phase until the loop stops.
    """

    def __init__(
        self,
        relay: Relay,
        *,
        mode: str = "inline",
        dispatcher: Dispatcher | None = None,
        max_backoff: float = 2.0,
        phase_url: str | None = None,
        spread: int = 1,
        partition_dispatcher: PartitionDispatcher | None = None,
    ) -> None:
        if mode not in ("inline", "celery"):
            raise ValueError(f"relay mode must be inline or celery, not {mode!r}")
        if spread > 1 and mode != "celery":
            raise ValueError("spreading partitions over workers needs celery mode")
        self.relay = relay
        self.mode = mode
        self.dispatch = dispatcher or _default_dispatcher
        self.max_backoff = max_backoff
        self.phase_url = phase_url
        self._seen: dict[tuple[Direction, tuple[str, str]], float] = {}
        self._last_sweep: dict[Direction, float] = {}
        self._lock = threading.Lock()
        self._gate = PhaseGate()
        self._switched = threading.Condition()
        self.spread = spread
        self.dispatch_partition = partition_dispatcher or _default_partition_dispatcher
        self._spread_at: dict[tuple[Direction, int], float] = {}

    @property
    def settings(self) -> RelaySettings:
        """The relay's settings under the phase it serves now."""
        return self.relay.settings

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set; an unreachable database only slows the loop down.

        Each direction runs in its own thread (they share the relay lock only while
        applying), so one direction's reads and waits never delay the other's events.
        Both lanes always exist; a lane whose direction the phase does not sync waits
        for a phase that does.
        """
        live = self._follow()
        log.info(
            "relay of %s started (%s mode, %s)",
            self.settings.context,
            self.mode,
            self.settings.phase.value,
        )
        try:
            self._run_lanes(stop)
        finally:
            if live is not None:
                live.stop()
            log.info("relay of %s stopped", self.settings.context)

    def _run_lanes(self, stop: threading.Event) -> None:
        """A thread per direction until ``stop``; a crashed lane stops them all and re-raises."""
        failures: list[BaseException] = []

        def lane(direction: Direction) -> None:
            try:
                self._run_lane(direction, stop)
            except BaseException as exc:
                log.exception("relay lane %s crashed", direction)
                failures.append(exc)
                stop.set()

        lanes = [
            threading.Thread(target=lane, args=(direction,), name=f"relay-{direction}")
            for direction in Direction
        ]
        for thread in lanes:
            thread.start()
        stop.wait()
        self._wake_lanes()
        for thread in lanes:
            thread.join()
        if failures:
            raise failures[0]

    def _follow(self) -> LivePhase | None:
        if self.phase_url is None:
            return None
        fallback = self.settings.phase
        return LivePhase(
            self.phase_url, self.settings.context, fallback=fallback, serve=self.switch_phase
        ).start()

    def switch_phase(self, state: PhaseState) -> None:
        """Serve ``state``'s phase from the next pass on.

        Returns once every pass that started under the old phase has finished (the
        caller acknowledges the epoch after this), and wakes the lanes it starts.
        """
        with self._gate.switching():
            before = self.settings.phase
            self.relay.use_phase(state.phase)
        self._wake_lanes()
        if before is state.phase:
            log.debug("relay of %s serves epoch %d", state.context, state.epoch)
            return
        log.info(
            "relay of %s: %s -> %s (epoch %d)",
            state.context,
            before.value,
            state.phase.value,
            state.epoch,
            extra={
                "event": "phase_switched",
                "context": state.context,
                "from": before.value,
                "to": state.phase.value,
                "epoch": state.epoch,
            },
        )

    def _wake_lanes(self) -> None:
        with self._switched:
            self._switched.notify_all()

    def _run_lane(self, direction: Direction, stop: threading.Event) -> None:
        # A lane wakes only for its own source's events; LISTEN before the first pass,
        # so an event committed while that pass runs still wakes the wait after it.
        urls = {"monolith": self.settings.monolith_url, "service": self.settings.service_url}
        waiter = Waiter([urls[direction.source]])
        waiter.connect()
        delay = 0.0
        try:
            while not stop.is_set():
                try:
                    handled = self._pass(direction)
                    delay = 0.0
                except StoreUnavailable as exc:
                    delay = min(self.max_backoff, max(0.1, delay * 2))
                    log.warning("database unavailable, retrying in %.1fs: %s", delay, exc)
                    stop.wait(delay)
                    continue
                if handled is None:
                    # An idle lane must not LISTEN: notifications nobody reads fill the
                    # server's queue. It listens again before its first pass.
                    waiter.close()
                    if self._idle(direction, stop):
                        waiter.connect()
                elif handled < self.settings.batch_size:
                    # A short batch drained the outbox as it was read; whatever commits
                    # after that read NOTIFYs the waiter (LISTENing since before the
                    # pass), so no empty pass is needed to find out.
                    waiter.wait(self.settings.poll_interval)
        finally:
            waiter.close()

    def _pass(self, direction: Direction) -> int | None:
        """One pass of a lane under the phase gate; None when the phase does not sync it."""
        with self._gate.passing():
            if direction not in self.settings.directions:
                return None
            return self.run_once((direction,))

    def _idle(self, direction: Direction, stop: threading.Event) -> bool:
        """Wait until the phase syncs ``direction`` again (True) or ``stop`` is set (False)."""
        with self._switched:
            while not stop.is_set() and direction not in self.settings.directions:
                self._switched.wait(IDLE_RECHECK_S)
        return not stop.is_set()

    def run_once(self, directions: tuple[Direction, ...] | None = None) -> int:
        """One pass over ``directions`` (default: every direction of the phase)."""
        handled = 0
        lanes = self.settings.directions if directions is None else directions
        for direction in lanes:
            monolith_events = direction is Direction.MONOLITH_TO_SERVICE
            if self.mode == "celery" and monolith_events and self.relay.backfill_running():
                continue  # (inline: the relay itself holds them back, under its lock)
            if self.mode == "inline":
                handled += self.apply_next(direction)
                continue
            if self.spread > 1:
                handled += self._spread_partitions(direction)
                continue
            events = self.relay.pending(direction)
            if events:
                self._hand_off(direction, events)
                handled += len(events)
        self.sweep(lanes)
        return handled

    def _spread_partitions(self, direction: Direction) -> int:
        """Send a task to each partition with pending events; returns how many were sent."""
        now = time.monotonic()
        indexes = self.relay.pending_partitions(direction, self.spread)
        sent = 0
        for index in sorted(indexes):
            if now - self._spread_at.get((direction, index), -SPREAD_REDISPATCH_S) < (
                SPREAD_REDISPATCH_S
            ):
                continue
            partition = Partition(index=index, count=self.spread)
            if self.dispatch_partition(self.settings.context, direction, partition):
                self._spread_at[(direction, index)] = now
                sent += 1
        return sent

    def apply_next(self, direction: Direction) -> int:
        """Apply the next pending batch in one locked pass; on a failure, isolate its keys."""
        try:
            return len(self.relay.apply_next(direction))
        except ApplyFailed:
            pass
        events = self.relay.pending(direction)
        return self.apply_batch(direction, events) if events else 0

    def apply_batch(self, direction: Direction, events: list[Event]) -> int:
        """Apply ``events``; keys that fail go to Celery with backoff, the others go through.

        A batch that fails (at a statement or at COMMIT) is split by key, and a key whose
        transaction failed as a whole is applied event by event, so only the event to
        blame counts an attempt; its key's later events wait for its retry. Returns how
        many events were handled (0 while a backfill holds monolith events).
        """
        try:
            return len(self.relay.apply(direction, events))
        except ApplyFailed:
            pass
        # Isolate the failing keys; the others go through, in first-event order.
        ordered = sorted(events, key=lambda event: (event.key, event.id))
        groups = [list(group) for _, group in groupby(ordered, key=lambda event: event.key)]
        for group in sorted(groups, key=lambda group: group[0].id):
            try:
                self.relay.apply_pinpointed(direction, group)
            except ApplyFailed as failure:
                self._retry_later(direction, failure)
        return len(events)

    def _retry_later(self, direction: Direction, failure: ApplyFailed) -> None:
        """Count the failed attempt and hand the key to a retry; its later events wait."""
        event = failure.event
        attempts = self.relay.record_failure(direction, event, failure)
        log.warning(
            "%s/%s blocked: event %s waits for retry %s; the key's later events wait behind it",
            event.aggregate_type,
            event.aggregate_key,
            event.id,
            attempts + 1,
            extra={"request_id": event.request, "event_id": event.event_id},
        )
        self._dispatch(direction, event, countdown=self.settings.backoff(attempts))

    def _hand_off(self, direction: Direction, events: list[Event]) -> None:
        self.relay.mark_in_flight(direction, events)
        first: dict[tuple[str, str], Event] = {}
        for event in events:
            first.setdefault(event.key, event)
        for event in first.values():
            self._dispatch(direction, event)

    def _dispatch(self, direction: Direction, event: Event, countdown: float = 0.0) -> None:
        with self._lock:
            self._seen[(direction, event.key)] = time.monotonic()
        self.dispatch(
            self.settings.context,
            direction,
            event.aggregate_type,
            event.aggregate_key,
            request_id=event.request,
            countdown=countdown,
        )

    def _retry_stale(self, direction: Direction, event: Event) -> None:
        """Inline mode retries a stale key here (no broker needed); celery mode re-sends it."""
        if self.mode == "celery":
            self._dispatch(direction, event)
            return
        with self._lock:
            self._seen[(direction, event.key)] = time.monotonic()
        with suppress(ApplyFailed):
            self.relay.retry_key(direction, event.aggregate_type, event.aggregate_key)

    def sweep(self, directions: tuple[Direction, ...] | None = None, *, force: bool = False) -> int:
        """Retry keys that have waited in flight longer than ``stale_after`` (lost retries)."""
        lanes = self.settings.directions if directions is None else directions
        now = time.monotonic()
        redispatched = 0
        for direction in lanes:
            last = self._last_sweep.get(direction, 0.0)
            if not force and now - last < min(5.0, self.settings.stale_after / 4):
                continue
            self._last_sweep[direction] = now
            redispatched += self._sweep_direction(direction, now)
        return redispatched

    def _sweep_direction(self, direction: Direction, now: float) -> int:
        heads: dict[tuple[str, str], Event] = {}
        for event in self.relay.in_flight(direction):
            heads.setdefault(event.key, event)
        redispatched = 0
        for key, event in heads.items():
            with self._lock:
                seen = self._seen.setdefault((direction, key), now)
            if now - seen >= self.settings.stale_after:
                self._retry_stale(direction, event)
                redispatched += 1
        with self._lock:
            for entry in [e for e in self._seen if e[0] is direction and e[1] not in heads]:
                del self._seen[entry]
        return redispatched
