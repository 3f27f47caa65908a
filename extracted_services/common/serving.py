"""What a service serves right now: one phase at one epoch, as one frozen value.

Everything that depends on the phase (the engine and its session factories, the table
views, the change sink) lives in a :class:`Serving`. A switch replaces the whole value
on ``app.state.serving``; each request keeps the one it started with
(:func:`extracted_services.common.deps.serving`), so no request mixes two phases.

    engines = Engines(settings)
    serving = serving_for(settings, Phase.DUAL_WRITE, 3, engines=engines, views=db.views)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from dualwrite.outbox import ChangeSink
from extracted_services.common.changes import sink_for
from extracted_services.common.database import (
    read_session_factory,
    readonly_engine,
    service_engine,
    session_factory,
)
from extracted_services.common.settings import ServiceSettings
from extracted_services.common.store import TableView
from migration_plans.core.phase import Phase, Side

__all__ = ["Engines", "Serving", "Views", "serving_for"]

Views = Callable[[Phase], dict[str, TableView]]
"""A service's ``db.views``: each table pair as a phase reads it."""


@dataclass(frozen=True)
class Serving:
    """One phase at one epoch, with everything a request needs to serve it."""

    context: str
    phase: Phase
    epoch: int
    engine: Engine
    sessions: sessionmaker[Session]
    write_sessions: sessionmaker[Session]
    views: dict[str, TableView]
    sink: ChangeSink | None

    @property
    def read_only(self) -> bool:
        """Whether writes go to the monolith (the shared phase): the service answers 409."""
        return not self.phase.owns_database

    def at_epoch(self, epoch: int) -> Serving:
        """The same phase under a newer epoch (a fence raised or lifted)."""
        return replace(self, epoch=epoch)


class Engines:
    """The two engines a service may read through, each built on first use, kept until
    :meth:`dispose` (at shutdown): a switch never disposes one that a request still
    running in the phase it left may be using.
    """

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self._built: dict[Side, Engine] = {}
        self._lock = threading.Lock()

    def for_phase(self, phase: Phase) -> Engine:
        """The monolith's, read-only, in shared; the service's own otherwise."""
        side = Side.MONOLITH if phase is Phase.SHARED else Side.SERVICE
        with self._lock:
            if side not in self._built:
                self._built[side] = self._build(side)
            return self._built[side]

    def _build(self, side: Side) -> Engine:
        echo = self.settings.sql_echo
        if side is Side.MONOLITH:
            return readonly_engine(self.settings.monolith_database_url, echo=echo)
        return service_engine(self.settings.database_url, echo=echo)

    def dispose(self) -> None:
        """Close every pooled connection of the engines built so far."""
        with self._lock:
            for engine in self._built.values():
                engine.dispose()


def serving_for(
    settings: ServiceSettings, phase: Phase, epoch: int, *, engines: Engines, views: Views
) -> Serving:
    """The :class:`Serving` of ``phase`` at ``epoch``."""
    engine = engines.for_phase(phase)
    return Serving(
        context=settings.context,
        phase=phase,
        epoch=epoch,
        engine=engine,
        sessions=read_session_factory(engine),
        write_sessions=session_factory(engine),
        views=views(phase),
        sink=sink_for(settings, phase),
    )
