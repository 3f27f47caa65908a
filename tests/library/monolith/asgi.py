"""ASGI entry point: ``uvicorn tests.library.monolith.asgi:application``."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.library.monolith.settings")

application = get_asgi_application()
