"""ASGI entry point: ``uvicorn legacy_monolith.asgi:application``."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "legacy_monolith.settings")

application = get_asgi_application()
