"""Where saga tasks go and how often the sweeper runs (no Django import: settings use it).

CELERY_BEAT_SCHEDULE = {**sweep_schedule()}       # in the monolith's settings
"""

from __future__ import annotations

import os

SAGA_QUEUE_ENV = "STRANGLER_SAGA_QUEUE"
SWEEP_ENV = "STRANGLER_SAGA_SWEEP_SECONDS"


def saga_queue() -> str:
    """The queue saga tasks go to (``STRANGLER_SAGA_QUEUE``, default ``sagas``)."""
    return os.environ.get(SAGA_QUEUE_ENV, "").strip() or "sagas"


def sweep_interval() -> float:
    """Seconds between sweeps (``STRANGLER_SAGA_SWEEP_SECONDS``, default 2, 0.1 to 300)."""
    raw = os.environ.get(SWEEP_ENV, "").strip() or "2"
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError(f"{SWEEP_ENV}={raw!r} is not a number of seconds") from None
    if not 0.1 <= seconds <= 300:
        raise ValueError(f"{SWEEP_ENV}={raw} is outside [0.1, 300] seconds")
    return seconds


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
