"""Orchestrated sagas persisted in the monolith's database (DESIGN.md, "Cross-context calls").

A saga is a list of steps, each with an optional compensation. Its state lives in
``strangler_saga`` (one row, created in the same transaction as the business row it
drives), so a crash at any point loses nothing: whoever holds the row's lease runs the
next step; an expired lease lets the sweeper (:func:`resume_due`) hand it to a worker.

- A step that succeeds moves the saga on; a local step's writes commit together with
  the progress (one transaction), a remote step is idempotent by its key.
- A step that raises :class:`StepFailed` (a business refusal: no stock, card declined)
  turns the saga around: the completed steps are compensated in reverse order.
- Any other exception is transient: the step is retried through Celery with exponential
  backoff. After ``max_attempts`` an abortable saga compensates; a saga that cannot be
  undone (or a compensation itself) is dead-lettered for an operator
  (``strangler saga retry`` puts it back where it died, with fresh attempts).

    PLACE = SagaDefinition("place_order", [Step("reserve", reserve, compensate=release), ...])
    register(PLACE)
    saga = start(PLACE, key="order:42:place", subject="order:42", payload={"order_id": 42})
    run(saga.pk)            # inline; returns when it finished or waits for a retry
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from dualwrite.django_app import ports
from dualwrite.django_app.models import Saga
from migration_plans.core.settings import env_number

__all__ = [
    "TERMINAL_STATES",
    "SagaDefinition",
    "SagaRun",
    "SagaSettings",
    "SagaState",
    "Step",
    "StepFailed",
    "UnknownSaga",
    "definition",
    "drive",
    "register",
    "resume_due",
    "run",
    "start",
]

log = logging.getLogger("strangler.saga")


class SagaState(StrEnum):
    """Where a saga is."""

    RUNNING = "running"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    COMPENSATED = "compensated"
    DEAD = "dead"


TERMINAL_STATES = frozenset({SagaState.COMPLETED, SagaState.COMPENSATED})
ACTIVE_STATES = (SagaState.RUNNING, SagaState.COMPENSATING)


class StepFailed(Exception):
    """A business refusal (``code`` like ``insufficient_stock``): compensate, do not retry."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class UnknownSaga(LookupError):
    """No definition is registered for a saga's kind (the process did not import it)."""


@dataclass
class SagaRun:
    """What a step sees: the saga's key and payload (a step may add results to it)."""

    saga_id: int
    kind: str
    key: str
    payload: dict[str, Any]

    def step_key(self, step: str) -> str:
        """Idempotency key of one step of this saga (stable across retries)."""
        return f"{self.key}:{step}"


StepAction = Callable[[SagaRun], None]


@dataclass(frozen=True)
class Step:
    """One step: ``action`` forward, ``compensate`` (if any) to undo it.

    ``calls``: the contexts the step calls through their ports; the step runs (and its
    local transaction commits) while their phases are held (:func:`ports.calling`).
    """

    name: str
    action: StepAction
    compensate: StepAction | None = None
    calls: tuple[str, ...] = ()


@dataclass(frozen=True)
class SagaDefinition:
    """A kind of saga. ``abortable``: a forward step that keeps failing compensates the
    saga (rather than dead-lettering it) once its attempts are spent."""

    kind: str
    steps: tuple[Step, ...]
    abortable: bool = True
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(step.name for step in self.steps))
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"saga {self.kind}: step names repeat: {self.names}")


@dataclass(frozen=True)
class SagaSettings:
    """Retry and lease policy, from ``STRANGLER_SAGA_*`` (read once per process)."""

    max_attempts: int = 8
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    lease_s: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SagaSettings:
        def number(name: str, default: float, low: float, high: float) -> float:
            return env_number(
                f"STRANGLER_SAGA_{name}", default, low=low, high=high, environ=environ
            )

        return cls(
            max_attempts=int(number("MAX_ATTEMPTS", cls.max_attempts, 1, 100)),
            backoff_base_s=number("BACKOFF_BASE", cls.backoff_base_s, 0.01, 60),
            backoff_max_s=number("BACKOFF_MAX", cls.backoff_max_s, 0.01, 3600),
            lease_s=number("LEASE_SECONDS", cls.lease_s, 1, 3600),
        )

    def backoff(self, attempts: int) -> float:
        """Seconds before attempt ``attempts + 1``: doubling from the base, capped."""
        return min(self.backoff_max_s, self.backoff_base_s * 2 ** max(0, attempts - 1))


_definitions: dict[str, SagaDefinition] = {}
_settings: SagaSettings | None = None
_owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"

#: Called with (saga id, delay in seconds) when a step must be retried later; the Celery
#: tasks module installs the real one. Without it the sweeper finds the saga when due.
Scheduler = Callable[[int, float], None]
_scheduler: Scheduler | None = None


def settings() -> SagaSettings:
    global _settings
    if _settings is None:
        _settings = SagaSettings.from_env()
    return _settings


def register(saga: SagaDefinition) -> SagaDefinition:
    """Make ``saga`` runnable in this process (import its module where workers start)."""
    _definitions[saga.kind] = saga
    return saga


def definition(kind: str) -> SagaDefinition:
    try:
        return _definitions[kind]
    except KeyError:
        raise UnknownSaga(
            f"no saga definition registered for kind {kind!r} in this process "
            f"(registered: {sorted(_definitions) or 'none'}); import the module that "
            "registers it in the worker's Django app ready()"
        ) from None


def set_scheduler(scheduler: Scheduler | None) -> None:
    """Install how retries are scheduled (the Celery tasks module does this)."""
    global _scheduler
    _scheduler = scheduler


def start(
    saga: SagaDefinition, *, key: str, subject: str, payload: Mapping[str, Any]
) -> tuple[Saga, bool]:
    """The saga row for ``key``: created (``True``) or the existing one (a retried request).

    Call it inside the transaction that writes the business row, so both commit or neither.
    """
    now = timezone.now()
    row, created = Saga.objects.get_or_create(
        key=key,
        defaults={
            "kind": saga.kind,
            "subject": subject,
            "state": SagaState.RUNNING.value,
            "step": 0,
            "step_name": saga.steps[0].name if saga.steps else "",
            "payload": json.dumps(dict(payload), separators=(",", ":")),
            "created_at": now,
            "updated_at": now,
        },
    )
    return row, created


def active_for(subject: str) -> Saga | None:
    """A saga on ``subject`` that has not finished (running, compensating or dead)."""
    finished = [state.value for state in TERMINAL_STATES]
    return Saga.objects.filter(subject=subject).exclude(state__in=finished).first()


# -- running --------------------------------------------------------------------------


class _LeaseLost(Exception):
    """Another process took the saga over (our lease expired)."""


def _claim(saga_id: int, owner: str, lease_s: float) -> bool:
    """Take the saga's lease if it is active, free and due (an early retry task, a
    duplicate sent by the sweeper, waits for its backoff like everyone else)."""
    now = timezone.now()
    claimed = (
        Saga.objects.filter(pk=saga_id, state__in=[s.value for s in ACTIVE_STATES])
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now) | Q(lease_owner=owner))
        .update(lease_owner=owner, lease_until=now + timedelta(seconds=lease_s), updated_at=now)
    )
    return claimed == 1


def _save(saga_id: int, owner: str, lease_s: float | None, **values: Any) -> None:
    """Write progress under our lease (renewed, or released when ``lease_s`` is None)."""
    now = timezone.now()
    values["updated_at"] = now
    if lease_s is None:
        values.update(lease_owner=None, lease_until=None)
    else:
        values["lease_until"] = now + timedelta(seconds=lease_s)
    if Saga.objects.filter(pk=saga_id, lease_owner=owner).update(**values) != 1:
        raise _LeaseLost(f"saga {saga_id}: lease lost to another process")


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


@dataclass
class _Cursor:
    """The saga as this run sees it."""

    row: Saga
    definition: SagaDefinition
    run: SagaRun

    @property
    def step(self) -> int:
        return self.row.step

    def payload_text(self) -> str:
        return json.dumps(self.run.payload, separators=(",", ":"))

    def name_at(self, index: int) -> str:
        steps = self.definition.steps
        return steps[index].name if 0 <= index < len(steps) else ""


def _load(saga_id: int) -> _Cursor:
    row = Saga.objects.get(pk=saga_id)
    saga = definition(row.kind)
    payload = json.loads(row.payload or "{}")
    return _Cursor(row, saga, SagaRun(row.pk, row.kind, row.key, payload))


def run(saga_id: int, *, owner: str | None = None) -> SagaState:
    """Run the saga as far as it goes now; returns its state when this run stops.

    It stops when the saga finishes, when a step must wait for a retry (scheduled), or
    when another process holds the lease (then nothing is done).
    """
    owner = owner or _owner
    policy = settings()
    if not _claim(saga_id, owner, policy.lease_s):
        return SagaState(Saga.objects.values_list("state", flat=True).get(pk=saga_id))
    cursor = _load(saga_id)
    try:
        while True:
            state = SagaState(cursor.row.state)
            if state is SagaState.RUNNING:
                advanced = _forward(cursor, owner, policy)
            elif state is SagaState.COMPENSATING:
                advanced = _backward(cursor, owner, policy)
            else:
                return state
            if not advanced:
                return SagaState(cursor.row.state)
    except _LeaseLost as exc:
        log.warning("%s", exc)
        return SagaState(Saga.objects.values_list("state", flat=True).get(pk=saga_id))


def _forward(cursor: _Cursor, owner: str, policy: SagaSettings) -> bool:
    steps = cursor.definition.steps
    index = cursor.step
    if index >= len(steps):
        _finish(cursor, owner, SagaState.COMPLETED)
        return True
    step = steps[index]
    try:
        with ports.calling(*step.calls), transaction.atomic():
            step.action(cursor.run)
            _advance(cursor, owner, policy, index + 1, SagaState.RUNNING)
        log.info("saga %s: %s done", cursor.run.key, step.name)
        return True
    except _LeaseLost:
        raise
    except StepFailed as exc:
        log.info("saga %s: %s refused (%s): compensating", cursor.run.key, step.name, exc.code)
        _turn_around(cursor, owner, policy, exc.code, exc.detail)
        return True
    except Exception as exc:
        return _failed_attempt(cursor, owner, policy, step.name, exc)


def _backward(cursor: _Cursor, owner: str, policy: SagaSettings) -> bool:
    index = cursor.step
    if index < 0:
        _finish(cursor, owner, SagaState.COMPENSATED)
        return True
    step = cursor.definition.steps[index]
    try:
        with ports.calling(*step.calls), transaction.atomic():
            if step.compensate is not None:
                step.compensate(cursor.run)
            _advance(cursor, owner, policy, index - 1, SagaState.COMPENSATING)
        log.info("saga %s: %s compensated", cursor.run.key, step.name)
        return True
    except _LeaseLost:
        raise
    except Exception as exc:  # compensations are retried whatever they raise
        return _failed_attempt(cursor, owner, policy, f"undo {step.name}", exc)


def _advance(
    cursor: _Cursor, owner: str, policy: SagaSettings, index: int, state: SagaState
) -> None:
    _save(
        cursor.row.pk,
        owner,
        policy.lease_s,
        step=index,
        step_name=cursor.name_at(index),
        attempts=0,
        next_attempt_at=None,
        payload=cursor.payload_text(),
        state=state.value,
    )
    cursor.row.step, cursor.row.state, cursor.row.attempts = index, state.value, 0


def _turn_around(
    cursor: _Cursor, owner: str, policy: SagaSettings, outcome: str, error: str
) -> None:
    """Compensate from the last completed step (the failed one did nothing)."""
    index = cursor.step - 1
    _save(
        cursor.row.pk,
        owner,
        policy.lease_s,
        state=SagaState.COMPENSATING.value,
        step=index,
        step_name=cursor.name_at(index),
        attempts=0,
        next_attempt_at=None,
        outcome=outcome[:64],
        last_error=error[:2000],
        payload=cursor.payload_text(),
    )
    cursor.row.state, cursor.row.step, cursor.row.attempts = (
        SagaState.COMPENSATING.value,
        index,
        0,
    )


def _finish(cursor: _Cursor, owner: str, state: SagaState) -> None:
    _save(cursor.row.pk, owner, None, state=state.value, finished_at=timezone.now())
    cursor.row.state = state.value
    log.info("saga %s: %s", cursor.run.key, state.value)


def _failed_attempt(
    cursor: _Cursor, owner: str, policy: SagaSettings, what: str, exc: Exception
) -> bool:
    """Count a transient failure; schedule the retry, give up, or dead-letter. Returns
    whether this run should go on (only after turning around)."""
    attempts = cursor.row.attempts + 1
    error = f"{what}: {_error_text(exc)}"
    compensating = SagaState(cursor.row.state) is SagaState.COMPENSATING
    if attempts < policy.max_attempts:
        delay = policy.backoff(attempts)
        due = timezone.now() + timedelta(seconds=delay)
        _save(cursor.row.pk, owner, None, attempts=attempts, next_attempt_at=due, last_error=error)
        cursor.row.attempts = attempts
        log.warning(
            "saga %s: %s (attempt %d of %d); retry in %.2fs",
            cursor.run.key,
            error,
            attempts,
            policy.max_attempts,
            delay,
        )
        _schedule(cursor.row.pk, delay)
        return False
    if not compensating and cursor.definition.abortable:
        log.error("saga %s: %s; attempts spent, compensating", cursor.run.key, error)
        _turn_around(cursor, owner, policy, f"gave_up:{cursor.name_at(cursor.step)}", error)
        return True
    _save(
        cursor.row.pk,
        owner,
        None,
        state=SagaState.DEAD.value,
        dead_from=cursor.row.state,
        attempts=attempts,
        next_attempt_at=None,
        last_error=error,
    )
    cursor.row.state = SagaState.DEAD.value
    log.error("saga %s: dead-lettered after %d attempts: %s", cursor.run.key, attempts, error)
    return False


def _schedule(saga_id: int, delay: float) -> None:
    if _scheduler is None:
        return
    try:
        _scheduler(saga_id, delay)
    except Exception:  # the row is due either way: the sweeper resumes it
        log.exception("saga %d: could not schedule its retry; the sweeper will", saga_id)


def drive(saga_id: int, *, wait_s: float, poll_s: float = 0.05) -> Saga:
    """Run the saga here and keep it going until it stops being active or ``wait_s``
    passes; returns its row. Retries that fall due while waiting run here too (whoever
    claims the lease first runs them: this thread or a worker)."""
    deadline = time.monotonic() + wait_s
    run(saga_id)
    while True:
        row = Saga.objects.get(pk=saga_id)
        left = deadline - time.monotonic()
        if row.state not in {s.value for s in ACTIVE_STATES} or left <= 0:
            return row
        now = timezone.now()
        due = row.next_attempt_at is None or row.next_attempt_at <= now
        free = row.lease_until is None or row.lease_until < now
        if due and free:
            run(saga_id)
            continue
        time.sleep(min(poll_s, left))


# -- sweeping and operating -----------------------------------------------------------


def due_ids(*, limit: int = 100, now: datetime | None = None) -> list[int]:
    """Sagas that should be running and nobody runs: due retries and expired leases."""
    moment = now or timezone.now()
    return list(
        Saga.objects.filter(state__in=[s.value for s in ACTIVE_STATES])
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=moment))
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=moment))
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:limit]
    )


def resume_due(dispatch: Callable[[int], None], *, limit: int = 100) -> int:
    """Hand every due saga to ``dispatch`` (a Celery send or an inline run); returns how many."""
    ids = due_ids(limit=limit)
    for saga_id in ids:
        dispatch(saga_id)
    return len(ids)


@contextmanager
def scheduler_installed(scheduler: Scheduler | None) -> Iterator[None]:
    """Use ``scheduler`` for retries inside the block (tests, bench)."""
    previous = _scheduler
    set_scheduler(scheduler)
    try:
        yield
    finally:
        set_scheduler(previous)
