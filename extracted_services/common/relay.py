"""The inline relay (:mod:`dualwrite.inline`) of the phase a service serves.

It runs exactly while the served phase has an outbox sink and the settings ask for it
(``<CONTEXT>_INLINE_RELAY``). Each phase gets a relay built for it: which side wins a
conflict depends on the phase's source of truth.

    inline = InlineRelaySwitch(settings)
    inline.follow(serving)   # start, stop or replace it for serving.phase
    inline.stop()            # at shutdown
"""

from __future__ import annotations

import logging

from dualwrite.config import RelaySettings
from dualwrite.inline import InlineRelay, start_inline_relay, stop_inline_relay
from extracted_services.common.serving import Serving
from extracted_services.common.settings import ServiceSettings
from migration_plans.core.phase import Phase

__all__ = ["InlineRelaySwitch"]

log = logging.getLogger("extracted_services.relay")


class InlineRelaySwitch:
    """Keeps this process's inline relay in step with the served phase."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.running: InlineRelay | None = None
        self.phase: Phase | None = None

    def follow(self, serving: Serving) -> None:
        """Stop the relay of the phase left, start one for ``serving.phase`` if it has a sink."""
        if serving.phase is self.phase:
            return
        self.stop()
        self.phase = serving.phase
        if not self.settings.inline_relay or serving.sink is None:
            return
        try:
            self.running = self._start(serving.phase)
        except Exception:
            # Best effort (the relay loop applies the events anyway): never block a switch.
            log.exception("inline relay of %s not started", self.settings.context)

    def stop(self) -> None:
        """Stop the running relay, if any (returns once its pass in progress finished)."""
        if self.running is None:
            return
        stop_inline_relay(self.settings.context)
        self.running = None
        self.phase = None

    def _start(self, phase: Phase) -> InlineRelay | None:
        settings = RelaySettings.from_env(
            self.settings.context,
            monolith_url=self.settings.monolith_database_url,
            service_url=self.settings.database_url,
            phase=phase,
            reverse_sync=self.settings.reverse_sync,
        )
        # One per context and process: a relay of another phase is replaced, none is
        # started where the phase does not sync service -> monolith or on PostgreSQL.
        return start_inline_relay(settings)
