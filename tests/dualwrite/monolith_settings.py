"""The monolith's settings plus the dual-write capture app (until settings.py lists it)."""

from legacy_monolith.settings import *  # noqa: F403
from legacy_monolith.settings import INSTALLED_APPS

if "dualwrite.django_app" not in INSTALLED_APPS:
    INSTALLED_APPS = [*INSTALLED_APPS, "dualwrite.django_app"]
