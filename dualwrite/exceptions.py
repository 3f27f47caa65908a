"""Errors of the dual-write relay and backfill.

    DualwriteError
    ├── StoreUnavailable   a database cannot be reached now: retried, never dead-lettered
    ├── ApplyFailed        one event could not be applied: counts toward the dead letter
    │   └── CommitFailed   the apply transaction failed as a whole (at COMMIT: a deferred
    │                      constraint, a serialization failure): which of its events is to
    │                      blame is found by applying them one by one
    └── SagaError          an operator's saga command was refused (:mod:`dualwrite.sagas`)
        ├── SagaTableMissing   the monolith has no ``strangler_saga`` table (not migrated)
        ├── SagaNotFound       no saga has that id
        └── SagaNotDead        the saga is not dead-lettered: nothing to retry

SQLAlchemy and driver errors are translated at the boundary (:func:`translate`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import exc as sa_exc

if TYPE_CHECKING:
    from collections.abc import Sequence

    from dualwrite.events import Event

PER_EVENT_SQLSTATE_CLASSES = ("23", "40")
"""SQLSTATE classes that blame the transaction's writes, not the database's reachability:
integrity violations and transaction rollbacks (serialization failure, deadlock)."""


class DualwriteError(Exception):
    """Base of every error this package raises."""


class StoreUnavailable(DualwriteError):
    """A database (monolith or service) is unreachable or locked; try again later."""


class ApplyFailed(DualwriteError):
    """Applying ``event`` failed for a reason retrying the same batch will not fix by itself."""

    def __init__(self, event: Event, cause: BaseException) -> None:
        super().__init__(
            f"event {event.id} ({event.aggregate_type}/{event.aggregate_key}): {cause}"
        )
        self.event = event
        self.cause = cause
        self.attempts = 0


class CommitFailed(ApplyFailed):
    """The transaction applying ``events`` failed as a whole (e.g. a deferred foreign key
    at COMMIT); ``event`` is the first of them, the culprit only when it is the only one."""

    def __init__(self, events: Sequence[Event], cause: BaseException) -> None:
        super().__init__(events[0], cause)
        self.events = list(events)


class SagaError(DualwriteError):
    """Base of the refusals of :mod:`dualwrite.sagas`."""


class SagaTableMissing(SagaError):
    """The monolith's database has no ``strangler_saga`` table yet."""


class SagaNotFound(SagaError):
    """No saga has the id an operator gave."""


class SagaNotDead(SagaError):
    """Only a dead-lettered saga can be retried; this one is running or finished."""


def is_unavailable(error: BaseException) -> bool:
    """True for errors that mean "not now" rather than "not this event"."""
    if isinstance(error, StoreUnavailable):
        return True
    if _sqlstate(error)[:2] in PER_EVENT_SQLSTATE_CLASSES:
        return False
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    transient = (
        sa_exc.OperationalError,
        sa_exc.InterfaceError,
        sa_exc.DisconnectionError,
        ConnectionError,
        TimeoutError,
    )
    return isinstance(error, transient)


def _sqlstate(error: BaseException) -> str:
    """The PostgreSQL SQLSTATE behind ``error`` ("" when there is none, as on SQLite)."""
    original = getattr(error, "orig", None) or error
    return str(getattr(original, "sqlstate", None) or "")
