"""The legacy Django + DRF shop that strangler migrates, one bounded context at a time."""

# The monolith's Celery app is current in every process (web workers send saga retries).
from legacy_monolith.celery_app import app as celery_app

__all__ = ["celery_app"]
