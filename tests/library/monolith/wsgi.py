"""WSGI entry point: ``gunicorn tests.library.monolith.wsgi:application``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.library.monolith.settings")

application = get_wsgi_application()
