"""The monolith's Celery app: it runs the order sagas' retries and their sweeper.

    celery -A legacy_monolith.celery_app worker -Q sagas -B --pool threads

Settings come from Django (``CELERY_*`` in :mod:`legacy_monolith.settings`, the sweeper's
beat entry included); the saga tasks come from the toolkit's Django app.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "legacy_monolith.settings")

app = Celery("legacy_monolith", include=["dualwrite.django_app.saga_tasks"])
app.config_from_object("django.conf:settings", namespace="CELERY")
