"""The proxy follows the live phase: it fences writes when told and acknowledges each epoch.

One :class:`LivePhase` per proxy process (each uvicorn worker is its own replica). It
follows the published state of every context (:class:`PhaseFollower`, in a thread) and
registers the process in the replica registry (:class:`ReplicaReporter`). For every newer
epoch of a context, on the event loop, in this order:

1. the route file is reloaded if it changed on disk (the control plane rewrites it
   before it publishes the phase that needs it): read and parsed in the follower's
   thread, swapped in on the loop;
2. the fence follows the state: a fenced state holds the context's writes, an unfenced
   one releases the held writes (they re-resolve on the table serving by then);
3. the epoch is acknowledged (recorded as served, reported at once). A fenced epoch is
   acknowledged only once no unsafe request of the context is in flight to an upstream;
   if they cannot finish before the fence's deadline, the epoch is never acknowledged.

The acknowledgement also carries the route table serving (full sha256 and generation)
and, while the file on disk is refused, a NACK naming that file's sha256 and the reasons.

    live = LivePhase(url, holder=holder, fence=fence, metrics=metrics, address=advertise)
    live.start()        # on the event loop (ASGI lifespan startup)
    live.ack()          # what the registry row says
    await live.stop()
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from migration_plans.core.live_phase import PhaseFollower, PhaseState
from migration_plans.core.replicas import Ack, Nack, ReplicaReporter, Role
from strangler_proxy.fence import Outcome, WriteFence
from strangler_proxy.metrics import ProxyMetrics
from strangler_proxy.routetable import TableHolder
from strangler_proxy.routetable.loader import LoadedFile

__all__ = ["LivePhase"]

log = logging.getLogger("strangler.proxy.live")


class LivePhase:
    """Follows the published phases for one proxy process, fences its writes, acknowledges.

    ``url`` None: nothing is followed (the fence stays open, nothing is reported).
    """

    def __init__(
        self,
        url: str | None,
        *,
        holder: TableHolder,
        fence: WriteFence,
        metrics: ProxyMetrics,
        address: str = "",
        clock: Callable[[], float] = time.time,
        on_lift: Callable[[str], None] | None = None,
    ) -> None:
        self.url = url
        self.on_lift = on_lift
        """Called with the context when its fence lifts (the app resets its breakers)."""
        self.holder = holder
        self.fence = fence
        self.metrics = metrics
        self.address = address
        self.clock = clock
        self.states: dict[str, PhaseState] = {}
        """The newest state applied, by context."""
        self.served: dict[str, int] = {}
        """The epoch acknowledged, by context (replaced, never mutated: read by a thread)."""
        self.follower: PhaseFollower | None = None
        self.reporter: ReplicaReporter | None = None
        self.instance: str | None = None
        """This replica's id in the registry (None until :meth:`start`)."""
        self._ack = Ack()
        self._acking: dict[str, asyncio.Task[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False

    @property
    def following(self) -> bool:
        return self.follower is not None

    def start(self) -> None:
        """Register this process and follow the published phases (on the event loop)."""
        self._loop = asyncio.get_running_loop()
        self.refresh_ack()
        if self.url is None:
            return
        follower = PhaseFollower(self.url, on_change=self._changed)
        self.reporter = ReplicaReporter(
            self.url, Role.PROXY, address=self.address, snapshot=self.ack, engine=follower.engine
        )  # one control connection per process for both
        self.instance = self.reporter.instance
        self.reporter.start()
        self.follower = follower.start()

    async def stop(self) -> None:
        """Stop following, deregister, refuse the writes still held."""
        self._stopped = True
        for task in self._acking.values():
            task.cancel()
        self._acking.clear()
        follower, self.follower = self.follower, None
        if follower is not None:
            await asyncio.to_thread(follower.stop)
        reporter, self.reporter = self.reporter, None
        if reporter is not None:
            await asyncio.to_thread(reporter.stop)
        self.fence.stop()

    # -- acknowledging -------------------------------------------------------------

    def ack(self) -> Ack:
        """What this process serves now (read by the reporter's thread)."""
        return self._ack

    def refresh_ack(self) -> None:
        """Rebuild the acknowledgement from the served epochs and the table holder."""
        error = self.holder.last_error
        nack = None if error is None else Nack(error.sha256 or "", "; ".join(error.issues))
        self._ack = Ack(
            epochs=self.served,
            route_hash=self.holder.current.sha256,
            route_generation=self.holder.generation,
            nack=nack,
        )

    def report(self) -> None:
        """Rebuild the acknowledgement and write it to the registry now."""
        self.refresh_ack()
        if self.reporter is not None:
            self.reporter.report_now()

    # -- following -----------------------------------------------------------------

    def _changed(self, state: PhaseState) -> None:
        """The follower's callback, in its thread: parse a changed route file here, off the
        event loop, then hop onto the loop."""
        assert self._loop is not None
        found = None
        try:
            if self.holder.changed_on_disk():
                found = self.holder.load_file()
        except Exception:  # the loop reloads it then
            log.exception("route table load failed in the follower")
        self._loop.call_soon_threadsafe(self.apply, state, found)

    def apply(self, state: PhaseState, found: LoadedFile | None = None) -> None:
        """Serve ``state`` (a newer epoch of its context): reload, fence, acknowledge.

        ``found``: the route file as loaded off the loop (else it is loaded here if it
        changed on disk).
        """
        context = state.context
        seen = self.states.get(context)
        if self._stopped or (seen is not None and seen.epoch >= state.epoch):
            return
        self.states[context] = state
        if found is not None:
            self.holder.commit(found)
        self._reload_if_changed()
        pending = self._acking.pop(context, None)
        if pending is not None:
            pending.cancel()  # a newer epoch supersedes the one waiting for its writes
        if state.holds_writes(self.clock()):
            self.fence.close_writes(context, state.epoch, state.fence_until)
            self._ack_when_drained(state)
        elif state.fenced:
            self.fence.open_writes(context, Outcome.EXPIRED)
            log.warning(
                "%s epoch %d: its write fence had expired already; not acknowledged",
                context,
                state.epoch,
                extra={"event": "fence_expired", "context": context, "epoch": state.epoch},
            )
        else:
            self.fence.open_writes(context)
            if seen is not None and seen.fenced and self.on_lift is not None:
                # The control plane lifts a fence only once every replica of the context
                # acknowledged: failures a breaker counted before it say nothing about now.
                self.on_lift(context)
            self._serve(state)

    def _reload_if_changed(self) -> None:
        try:
            if self.holder.changed_on_disk():
                self.holder.reload()
        except Exception:  # a bad reload must not keep the epoch from being served
            log.exception("route table reload failed; still serving %s", self.holder.current.hash)

    def _ack_when_drained(self, state: PhaseState) -> None:
        if not self.fence.in_flight.get(state.context):
            self._serve(state)
            return
        assert self._loop is not None
        task = self._loop.create_task(self._drain_then_serve(state))
        self._acking[state.context] = task

    async def _drain_then_serve(self, state: PhaseState) -> None:
        context = state.context
        timeout = None if state.fence_until is None else state.fence_until - self.clock()
        try:
            if await self.fence.drained(context, timeout):
                self._serve(state)
                return
            log.warning(
                "%s epoch %d not acknowledged: %d writes still in flight at the fence's deadline",
                context,
                state.epoch,
                self.fence.in_flight.get(context, 0),
                extra={"event": "fence_not_drained", "context": context, "epoch": state.epoch},
            )
        finally:
            if self._acking.get(context) is asyncio.current_task():
                del self._acking[context]

    def _serve(self, state: PhaseState) -> None:
        self.served = {**self.served, state.context: state.epoch}
        self.metrics.phase_epoch.labels(state.context).set(state.epoch)
        log.info(
            "%s serves %s epoch %d%s",
            state.context,
            state.phase.value,
            state.epoch,
            " (writes fenced)" if state.fenced else "",
            extra={"event": "phase_served", "context": state.context, "epoch": state.epoch},
        )
        self.report()

    # -- introspection -------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """This replica, what it serves and each context's fence (the admin API's ``live``)."""
        ack = self._ack
        return {
            "following": self.following,
            "instance": self.instance,
            "address": self.address or None,
            "route_hash": ack.route_hash,
            "route_generation": ack.route_generation,
            "nack": None
            if ack.nack is None
            else {"route_hash": ack.nack.route_hash, "reason": ack.nack.reason},
            "fence_queue": self.fence.capacity,
            "held": self.fence.held,
            "contexts": {name: self._context(name) for name in self._contexts()},
        }

    def _contexts(self) -> list[str]:
        return sorted({*self.states, *self.fence.gates, *self.fence.in_flight})

    def _context(self, name: str) -> dict[str, Any]:
        state = self.states.get(name)
        return {
            "phase": None if state is None else state.phase.value,
            "epoch": None if state is None else state.epoch,
            "served_epoch": self.served.get(name),
            "fenced": False if state is None else state.fenced,
            **self.fence.describe(name),
        }
