"""The monolith's Celery app: it runs the order sagas' retries and their sweeper.

    celery -A legacy_monolith.celery_app worker -Q sagas -B --pool threads

Settings come from Django (``CELERY_*`` in :mod:`legacy_monolith.settings`); the saga
tasks and the sweeper's beat entry come from the toolkit's Django app.
"""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "legacy_monolith.settings")

app = Celery("legacy_monolith", include=["dualwrite.django_app.saga_tasks"])
app.config_from_object("django.conf:settings", namespace="CELERY")


@app.on_after_configure.connect
def _configure(sender: Celery, **_: object) -> None:
    from dualwrite.django_app.saga_tasks import sweep_schedule

    broker = str(sender.conf.broker_url or "")
    if "sqlite:///" in broker:
        Path(broker.split("sqlite:///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    elif broker.startswith("redis"):
        sender.conf.broker_transport_options = {
            "socket_connect_timeout": 2,
            "socket_timeout": 5,
            "visibility_timeout": 3600,
        }
    sender.conf.beat_schedule = {**(sender.conf.beat_schedule or {}), **sweep_schedule()}
