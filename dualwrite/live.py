"""The relay follows its context's published phase (DESIGN.md, "Transitions are live").

The control plane publishes a (phase, epoch) per context
(:mod:`migration_plans.core.live_phase`); a relay loop follows it without a restart and
registers as a :attr:`Role.RELAY` replica that acknowledges every epoch it serves.
Following is on unless the phase is pinned by the environment (``<CONTEXT>_PHASE`` or
``STRANGLER_PHASE``) or ``STRANGLER_LIVE_PHASE=off``. Until a phase is published, the
plan's phase is served as epoch 0.

    live = LivePhase(control_db_url(), "catalog", fallback=Phase.DUAL_WRITE, serve=switch)
    live.start()   # serve() ran for the current state before this returns
    live.stop()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import Engine

from migration_plans.core.live_phase import (
    PhaseFollower,
    PhaseGate,
    PhaseState,
    follows_published_phase,
    read_state,
)
from migration_plans.core.phase import Phase
from migration_plans.core.replicas import Ack, ReplicaReporter, Role

__all__ = [
    "LivePhase",
    "PhaseGate",
    "follows_published_phase",
    "published_state",
]

log = logging.getLogger("dualwrite.live")


def published_state(engine: Engine, context: str, fallback: Phase) -> PhaseState:
    """The published state of ``context``; ``fallback`` at epoch 0 before the first publication."""
    state = read_state(engine, context)
    return state if state is not None else PhaseState(context, fallback, 0)


class LivePhase:
    """Follows the published phase of one context for a relay and acknowledges each epoch.

    ``serve(state)`` runs for the current state before :meth:`start` returns, then in
    the follower's thread for every newer epoch; the epoch is acknowledged (replica row
    of role ``relay``) as soon as ``serve`` returns, so ``serve`` must only return once
    the relay works under the new phase.
    """

    def __init__(
        self,
        url: str,
        context: str,
        *,
        fallback: Phase,
        serve: Callable[[PhaseState], None],
    ) -> None:
        self.url = url
        self.context = context
        self.fallback = fallback
        self.serve = serve
        self.epoch: int | None = None
        self._serving = threading.Lock()
        self._follower = PhaseFollower(url, self._changed, contexts=[context])
        # One control connection per process for both.
        self._reporter = ReplicaReporter(
            url, Role.RELAY, context=context, snapshot=self.ack, engine=self._follower.engine
        )

    def ack(self) -> Ack:
        """What the relay serves now (nothing before its first switch)."""
        epoch = self.epoch
        return Ack(epochs={} if epoch is None else {self.context: epoch})

    def start(self) -> LivePhase:
        """Serve the current state (published, else the fallback at epoch 0), then follow."""
        self._follower.start()
        if self.epoch is None:  # nothing published yet, or the control database is down
            self._changed(PhaseState(self.context, self.fallback, 0))
        self._reporter.start()
        return self

    def stop(self) -> None:
        """Stop following and deregister the replica."""
        self._follower.stop()
        self._reporter.stop()

    def _changed(self, state: PhaseState) -> None:
        # The fallback (epoch 0) may race the follower's first newer epoch: serve in order.
        with self._serving:
            if self.epoch is not None and state.epoch <= self.epoch:
                return
            self.serve(state)
            self.epoch = state.epoch
        self._reporter.report_now()
