"""Where saga tasks go and how often the sweeper runs (no Django import: settings use it).

CELERY_BEAT_SCHEDULE = {**sweep_schedule()}       # in the monolith's settings
"""

from __future__ import annotations

import os

from migration_plans.core.settings import env_number

SAGA_QUEUE_ENV = "STRANGLER_SAGA_QUEUE"
SWEEP_ENV = "STRANGLER_SAGA_SWEEP_SECONDS"


def saga_queue() -> str:
    """The queue saga tasks go to (``STRANGLER_SAGA_QUEUE``, default ``sagas``)."""
    return os.environ.get(SAGA_QUEUE_ENV, "").strip() or "sagas"


def sweep_interval() -> float:
    """Seconds between sweeps (``STRANGLER_SAGA_SWEEP_SECONDS``, default 2, 0.1 to 300)."""
    return env_number(SWEEP_ENV, 2.0, low=0.1, high=300)


def sweep_schedule() -> dict[str, dict[str, object]]:
    """Beat entry of the sweeper, to merge into the Celery app's ``beat_schedule``."""
    interval = sweep_interval()
    return {
        "strangler-saga-sweep": {
            "task": "strangler.saga.sweep",
            "schedule": interval,
            "options": {"queue": saga_queue(), "expires": interval * 2},
        }
    }
