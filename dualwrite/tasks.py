"""Celery tasks: retries with exponential backoff, then the dead letter.

``apply_key`` applies every unapplied event of one aggregate key (so order holds per
key). A database that cannot be reached is retried without limit (capped backoff); an
event that fails to apply counts an attempt and is dead-lettered after
``max_attempts``.

Each task first reads its context's published phase (one row of the control database,
:mod:`dualwrite.live`) and applies under it, so a worker never applies with the phase
of an earlier task. A task whose direction the phase no longer syncs leaves its events
unapplied (the relay loop's sweeper hands them out again if the phase comes back; the
drain check counts them meanwhile) and succeeds. Workers do not register as replicas:
a task lives for one key, and what a transition waits for is the outboxes' backlog
(:func:`dualwrite.status.outbox_backlog`), which counts a task's events until its
apply has committed.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import cache
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from dualwrite.celery_app import app, queue_name
from dualwrite.config import Direction, RelaySettings
from dualwrite.exceptions import ApplyFailed, StoreUnavailable
from dualwrite.live import follows_published_phase, published_state
from dualwrite.partitions import WHOLE, Partition
from dualwrite.relay import Relay
from migration_plans.core.control_db import control_engine

log = logging.getLogger("dualwrite.tasks")


@cache
def configured_settings(context: str) -> RelaySettings:
    """The settings of ``context`` as the environment and the plan give them (read once)."""
    return RelaySettings.from_env(context)


@cache
def relay_for(context: str) -> Relay:
    """One relay (and its engines) per context per worker process."""
    return Relay(configured_settings(context))


@cache
def partition_relay_for(context: str, partition: Partition) -> Relay:
    """One relay per partition of a context per worker process (``apply_partition``)."""
    return Relay(replace(configured_settings(context), partition=partition))


def current_relay(context: str, partition: Partition = WHOLE) -> Relay:
    """:func:`relay_for` ``context``, switched to the phase published right now.

    A pinned phase (``<CONTEXT>_PHASE``, ``STRANGLER_PHASE``) or ``STRANGLER_LIVE_PHASE=off``
    keeps the configured one. Raises :class:`StoreUnavailable` when the control database
    cannot be read: applying under a phase that may be stale is never the fallback.
    """
    relay = relay_for(context) if partition.whole else partition_relay_for(context, partition)
    if not follows_published_phase(context):
        return relay
    try:
        state = published_state(control_engine(), context, configured_settings(context).phase)
    except SQLAlchemyError as exc:
        raise StoreUnavailable(f"control database: {exc}") from exc
    relay.use_phase(state.phase)
    return relay


def _synced(
    relay: Relay, direction: Direction, key: tuple[str, str], extra: dict[str, str]
) -> bool:
    """Whether the phase syncs ``direction``; if not, say that the key's events wait."""
    if direction in relay.settings.directions:
        return True
    log.info(
        "%s %s/%s left unapplied: %s does not sync %s",
        relay.context,
        *key,
        relay.settings.phase.value,
        direction.value,
        extra={**extra, "event": "apply_deferred"},
    )
    return False


@app.task(bind=True, name="dualwrite.apply_key", max_retries=None, acks_late=True)
def apply_key(
    self: Any,
    context: str,
    direction: str,
    aggregate_type: str,
    aggregate_key: str,
    request_id: str | None = None,
) -> int:
    """Apply the unapplied events of one key under the published phase; retry with backoff."""
    extra = {"request_id": request_id or "-"}
    try:
        relay = current_relay(context)
        if not _synced(relay, Direction(direction), (aggregate_type, aggregate_key), extra):
            return 0
        return relay.retry_key(Direction(direction), aggregate_type, aggregate_key)
    except StoreUnavailable as exc:
        delay = configured_settings(context).backoff(self.request.retries + 1)
        log.warning("retry in %.2fs: database unavailable: %s", delay, exc, extra=extra)
        raise self.retry(countdown=delay, exc=exc) from exc
    except ApplyFailed as exc:
        delay = configured_settings(context).backoff(exc.attempts)
        log.warning("retry in %.2fs: %s", delay, exc, extra=extra)
        raise self.retry(countdown=delay, exc=exc) from exc


@app.task(bind=True, name="dualwrite.apply_partition", max_retries=None, acks_late=True)
def apply_partition(self: Any, context: str, direction: str, index: int, count: int) -> int:
    """Apply the next pending batch of one partition (celery mode with ``--partitions``).

    The batch is applied as the relay loop applies it, under the partition's locks (two
    tasks of one partition take turns); a failing key goes to ``apply_key`` retries. A
    full batch sends the partition's next task at once, so a backlog drains without
    waiting for the loop.
    """
    partition = Partition(index=index, count=count)
    extra = {"request_id": f"partition-{index}-of-{count}"}
    try:
        relay = current_relay(context, partition)
        if Direction(direction) not in relay.settings.directions:
            return 0
        # lazy: the loop module imports psycopg's LISTEN machinery, which tasks rarely need
        from dualwrite.loop import RelayLoop

        handled = RelayLoop(relay, mode="inline").apply_next(Direction(direction))
    except StoreUnavailable as exc:
        delay = configured_settings(context).backoff(self.request.retries + 1)
        log.warning("retry in %.2fs: database unavailable: %s", delay, exc, extra=extra)
        raise self.retry(countdown=delay, exc=exc) from exc
    if handled >= relay.settings.batch_size:
        dispatch_partition(context, Direction(direction), partition)
    return handled


def dispatch_partition(context: str, direction: Direction, partition: Partition) -> bool:
    """Send an ``apply_partition`` task; False (logged) when the broker cannot be reached."""
    try:
        apply_partition.apply_async(
            args=(context, direction.value, partition.index, partition.count),
            queue=queue_name(),
            retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0.1, "interval_step": 0.2},
        )
    except Exception as exc:
        log.warning("cannot dispatch %s of %s to Celery: %s", partition, context, exc)
        return False
    return True


def dispatch(
    context: str,
    direction: Direction,
    aggregate_type: str,
    aggregate_key: str,
    *,
    request_id: str | None,
    countdown: float = 0.0,
) -> bool:
    """Send an ``apply_key`` task; False (logged) when the broker cannot be reached."""
    try:
        apply_key.apply_async(
            args=(context, direction.value, aggregate_type, aggregate_key, request_id),
            countdown=countdown,
            queue=queue_name(),
            headers={"x_request_id": request_id},
            retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0.1, "interval_step": 0.2},
        )
    except Exception as exc:
        log.warning(
            "cannot dispatch %s/%s to Celery: %s",
            aggregate_type,
            aggregate_key,
            exc,
            extra={"request_id": request_id or "-"},
        )
        return False
    return True
