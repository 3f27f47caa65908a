"""Celery tasks of the sagas: run one saga, and sweep for due ones (retries, crashed runs).

The monolith's Celery app imports this module (``include=[...]`` or autodiscovery) and
schedules :func:`sweep_sagas` with beat
(:func:`dualwrite.django_app.saga_schedule.sweep_schedule` in ``CELERY_BEAT_SCHEDULE``). Importing it installs the
Celery scheduler for retries in this process, web workers included.

    celery -A legacy_monolith.celery_app worker -Q sagas -B
"""

from __future__ import annotations

import logging

from celery import shared_task

from dualwrite.django_app import saga
from dualwrite.django_app.saga_schedule import saga_queue

log = logging.getLogger("strangler.saga")


@shared_task(name="strangler.saga.run", ignore_result=True, acks_late=True)
def run_saga(saga_id: int) -> str:
    """Run one saga as far as it goes (no-op when another process holds it)."""
    return saga.run(saga_id).value


@shared_task(name="strangler.saga.sweep", ignore_result=True)
def sweep_sagas() -> int:
    """Send every due saga to a worker: retries whose time came, runs whose lease expired."""
    sent = saga.resume_due(_send_now)
    if sent:
        log.info("saga sweep: resumed %d", sent)
    return sent


def _send_now(saga_id: int) -> None:
    run_saga.apply_async((saga_id,), queue=saga_queue())


def schedule_retry(saga_id: int, delay: float) -> None:
    """Run ``saga_id`` again in ``delay`` seconds (through the broker)."""
    # A hair after the backoff: a task that arrives before it is due does nothing.
    run_saga.apply_async((saga_id,), countdown=max(0.0, delay) + 0.05, queue=saga_queue())


saga.set_scheduler(schedule_retry)
