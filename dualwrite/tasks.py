"""Celery tasks: retries with exponential backoff, then the dead letter.

``apply_key`` applies every unapplied event of one aggregate key (so order holds per
key). A database that cannot be reached is retried without limit (capped backoff); an
event that fails to apply counts an attempt and is dead-lettered after
``max_attempts``.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from dualwrite.celery_app import app, queue_name
from dualwrite.config import Direction, RelaySettings
from dualwrite.exceptions import ApplyFailed, StoreUnavailable
from dualwrite.relay import Relay

log = logging.getLogger("dualwrite.tasks")


@cache
def relay_for(context: str) -> Relay:
    """One relay (and its engines) per context per worker process."""
    return Relay(RelaySettings.from_env(context))


@app.task(bind=True, name="dualwrite.apply_key", max_retries=None, acks_late=True)
def apply_key(
    self: Any,
    context: str,
    direction: str,
    aggregate_type: str,
    aggregate_key: str,
    request_id: str | None = None,
) -> int:
    """Apply the unapplied events of one key; retry with backoff on failure."""
    relay = relay_for(context)
    extra = {"request_id": request_id or "-"}
    try:
        return relay.retry_key(Direction(direction), aggregate_type, aggregate_key)
    except StoreUnavailable as exc:
        delay = relay.settings.backoff(self.request.retries + 1)
        log.warning("retry in %.2fs: database unavailable: %s", delay, exc, extra=extra)
        raise self.retry(countdown=delay, exc=exc) from exc
    except ApplyFailed as exc:
        delay = relay.settings.backoff(exc.attempts)
        log.warning("retry in %.2fs: %s", delay, exc, extra=extra)
        raise self.retry(countdown=delay, exc=exc) from exc


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
