"""A running service follows its context's published phase without a restart.

:class:`LivePhase` installs the :class:`~extracted_services.common.serving.Serving` of
each newer epoch on ``app.state.serving`` (requests already running finish on the one
they took), keeps the inline relay running exactly while the phase has an outbox sink,
moves the phase gauge, logs ``phase_switched`` and acknowledges every epoch in the
replica registry (role ``service``). Following is on unless the phase is pinned or
``STRANGLER_LIVE_PHASE=off`` (:attr:`ServiceSettings.follows_live_phase`); until a phase
is published, the configured one (the plan's) is served as epoch 0.

    live = LivePhase(settings, views=db.views, state=app.state)   # installs epoch 0
    live.start()     # at startup: follow and acknowledge
    live.stop()      # at shutdown
"""

from __future__ import annotations

import logging
import threading

from starlette.datastructures import State

from extracted_services.common.metrics import PHASE
from extracted_services.common.relay import InlineRelaySwitch
from extracted_services.common.serving import Engines, Serving, Views, serving_for
from extracted_services.common.settings import ServiceSettings
from migration_plans.core.control_db import control_db_url
from migration_plans.core.live_phase import PhaseFollower, PhaseState
from migration_plans.core.phase import Phase
from migration_plans.core.replicas import Ack, ReplicaReporter, Role

__all__ = ["LivePhase"]

log = logging.getLogger("extracted_services.phase")


class LivePhase:
    """The phase one service process serves, switched as the control plane publishes."""

    def __init__(self, settings: ServiceSettings, *, views: Views, state: State) -> None:
        self.settings = settings
        self.views = views
        self.state = state
        self.engines = Engines(settings)
        self.inline = InlineRelaySwitch(settings)
        self._switching = threading.Lock()
        self._follower: PhaseFollower | None = None
        self._reporter: ReplicaReporter | None = None
        self.state.serving = self._build(settings.phase, 0)
        PHASE.labels(settings.context, settings.phase.value).set(1)

    @property
    def serving(self) -> Serving:
        """What new requests are served with."""
        current: Serving = self.state.serving
        return current

    def start(self) -> None:
        """Start the current phase's inline relay; then follow and acknowledge, unless pinned.

        The published state, if any, is installed before this returns.
        """
        self.inline.follow(self.serving)
        if not self.settings.follows_live_phase:
            return
        url, context = control_db_url(), self.settings.context
        follower = PhaseFollower(url, self.apply, contexts=[context])
        self._reporter = ReplicaReporter(
            url,
            Role.SERVICE,
            context=context,
            address=self.settings.advertise_url,
            snapshot=self.ack,
            engine=follower.engine,  # one control connection per process for both
        )
        self._follower = follower.start()
        self._reporter.start()

    def stop(self) -> None:
        """Stop following, deregister, stop the inline relay, dispose the engines."""
        if self._follower is not None:
            self._follower.stop()
        if self._reporter is not None:
            self._reporter.stop()
        self.inline.stop()
        self.engines.dispose()

    def ack(self) -> Ack:
        """The epoch of the :class:`Serving` installed now."""
        return Ack(epochs={self.settings.context: self.serving.epoch})

    def apply(self, published: PhaseState) -> None:
        """Serve ``published`` unless its epoch is not newer; acknowledge it at once."""
        with self._switching:
            current = self.serving
            if published.epoch <= current.epoch:
                return
            self._switch(current, published)
        if self._reporter is not None:
            self._reporter.report_now()

    def _switch(self, current: Serving, published: PhaseState) -> None:
        if published.phase is current.phase:
            self.state.serving = current.at_epoch(published.epoch)
            log.info(
                "%s: %s at epoch %d",
                current.context,
                current.phase.value,
                published.epoch,
                extra={"event": "phase_epoch", "context": current.context, **_epoch(published)},
            )
            return
        switched = self._build(published.phase, published.epoch)
        # The relay of the new phase is up before its first write commits.
        self.inline.follow(switched)
        self.state.serving = switched
        PHASE.labels(current.context, current.phase.value).set(0)
        PHASE.labels(current.context, switched.phase.value).set(1)
        log.info(
            "%s: %s -> %s at epoch %d",
            current.context,
            current.phase.value,
            switched.phase.value,
            switched.epoch,
            extra={
                "event": "phase_switched",
                "context": current.context,
                "from": current.phase.value,
                "to": switched.phase.value,
                **_epoch(published),
            },
        )

    def _build(self, phase: Phase, epoch: int) -> Serving:
        return serving_for(self.settings, phase, epoch, engines=self.engines, views=self.views)


def _epoch(published: PhaseState) -> dict[str, object]:
    return {"epoch": published.epoch, "fenced": published.fenced}
