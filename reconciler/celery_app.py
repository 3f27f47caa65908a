"""The reconciler's Celery app: segment tasks, a per-context run task, the beat schedule.

Broker and result backend come from the environment:

- ``STRANGLER_BROKER_URL`` (default: embedded ``sqla+sqlite:///var/broker.sqlite3``)
- ``STRANGLER_RESULT_BACKEND`` (default: the Redis broker itself, or
  ``db+sqlite:///var/results.sqlite3`` for the embedded broker)
- ``STRANGLER_RECONCILE_QUEUE`` (default ``reconciler``)
- ``STRANGLER_RECONCILE_METRICS_PORT``: serve the Prometheus gauges from the worker

Run a worker and the scheduler::

    celery -A reconciler.celery_app worker --pool solo -Q reconciler
    celery -A reconciler.celery_app beat
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_ready

from migration_plans.core.plan import load_plans
from migration_plans.core.settings import plans_dir
from migration_plans.core.yamlfile import ConfigError

DEFAULT_BROKER = "sqla+sqlite:///var/broker.sqlite3"
DEFAULT_BACKEND = "db+sqlite:///var/results.sqlite3"
DEFAULT_QUEUE = "reconciler"

log = logging.getLogger(__name__)


def queue_name() -> str:
    return os.environ.get("STRANGLER_RECONCILE_QUEUE", DEFAULT_QUEUE)


def beat_schedule() -> dict[str, dict[str, Any]]:
    """One periodic reconcile per context, every ``reconcile_interval_seconds`` of its plan."""
    try:
        plans = load_plans(plans_dir())
    except ConfigError as exc:
        log.error("reconciler beat: plans are invalid, no schedule: %s", exc)
        return {}
    return {
        f"reconcile-{context}": {
            "task": "reconciler.reconcile_context",
            "schedule": float(plan.reconcile_interval_seconds),
            "args": (context,),
            "options": {"queue": queue_name()},
        }
        for context, plan in plans.items()
    }


def make_celery(
    broker: str | None = None, backend: str | None = None, queue: str | None = None
) -> Celery:
    """A configured app (tests make their own with Redis URLs and a unique queue)."""
    broker = broker or os.environ.get("STRANGLER_BROKER_URL", DEFAULT_BROKER)
    default_backend = broker if broker.startswith("redis") else DEFAULT_BACKEND
    backend = backend or os.environ.get("STRANGLER_RESULT_BACKEND", default_backend)
    for url in (broker, backend):
        if "sqlite:///" in url and ":memory:" not in url:
            Path(url.split("sqlite:///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    app = Celery("reconciler", broker=broker, backend=backend, include=["reconciler.tasks"])
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=queue or queue_name(),
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        result_expires=3600,
        broker_connection_retry_on_startup=True,
        beat_schedule=beat_schedule(),
    )
    return app


@worker_ready.connect
def _serve_metrics(**_kwargs: Any) -> None:
    port = os.environ.get("STRANGLER_RECONCILE_METRICS_PORT")
    if port:
        from prometheus_client import start_http_server

        start_http_server(int(port))


app = make_celery()
