"""The Celery app of the relay's retries (and of the ``celery`` relay mode).

    STRANGLER_BROKER_URL      default sqla+sqlite:///var/broker.sqlite3 (kombu's SQLAlchemy
                              transport: the embedded default); redis://... in production
    STRANGLER_RESULT_BACKEND  default db+sqlite:///var/results.sqlite3
    STRANGLER_RELAY_QUEUE     queue of the relay's tasks (default ``dualwrite``)

    celery -A dualwrite.celery_app worker -Q dualwrite --pool solo

Tasks carry the originating ``X-Request-ID`` in their arguments and their headers.
"""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery

DEFAULT_BROKER = "sqla+sqlite:///var/broker.sqlite3"
DEFAULT_BACKEND = "db+sqlite:///var/results.sqlite3"


def queue_name() -> str:
    return os.environ.get("STRANGLER_RELAY_QUEUE", "dualwrite")


def _ensure_sqlite_dir(url: str) -> None:
    if "sqlite:///" in url and not url.endswith(":memory:"):
        Path(url.split("sqlite:///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)


def make_celery() -> Celery:
    """The relay's Celery app, configured from the environment."""
    broker = os.environ.get("STRANGLER_BROKER_URL", DEFAULT_BROKER)
    backend = os.environ.get("STRANGLER_RESULT_BACKEND", DEFAULT_BACKEND)
    for url in (broker, backend):
        _ensure_sqlite_dir(url)
    celery = Celery("dualwrite", broker=broker, backend=backend, include=["dualwrite.tasks"])
    celery.conf.update(
        task_default_queue=queue_name(),
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    if broker.startswith("redis"):
        # Not for the SQLAlchemy transport: kombu passes these to create_engine.
        celery.conf.broker_transport_options = {
            "socket_connect_timeout": 2,
            "socket_timeout": 5,
            "visibility_timeout": 3600,
        }
    return celery


app = make_celery()
