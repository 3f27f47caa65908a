"""Django settings of the library monolith, read from the environment.

Environment:
    DATABASE_URL   default ``sqlite:///var/library.sqlite3``; ``postgresql://`` uses psycopg 3.
    SECRET_KEY     required unless DEBUG is on.
    DEBUG          ``true``/``false`` (default false).
    ALLOWED_HOSTS  comma-separated (default ``localhost,127.0.0.1,[::1],testserver``).
    PASSWORD_HASHERS comma-separated hasher classes (tests use MD5 for speed).
    LOG_LEVEL      default ``INFO``.
"""

from __future__ import annotations

import os
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

DEV_SECRET_KEY = "django-insecure-library-development-key-do-not-use-in-production"


def env_bool(name: str, default: bool = False) -> bool:
    """A boolean environment variable (``1/true/yes/on``)."""
    raw = os.environ.get(name, "").strip().lower()
    return default if not raw else raw in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    """A comma-separated environment variable."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def database_config(url: str) -> dict[str, Any]:
    """``DATABASES['default']`` for ``url`` (SQLite waits for concurrent writers)."""
    config: dict[str, Any] = dict(dj_database_url.parse(url))
    options: dict[str, Any] = dict(config.get("OPTIONS") or {})
    if config["ENGINE"] == "django.db.backends.sqlite3":
        options.setdefault("timeout", 30)
        options.setdefault("transaction_mode", "IMMEDIATE")
        options.setdefault("init_command", "PRAGMA journal_mode=WAL;")
    elif config["ENGINE"] == "django.db.backends.postgresql":
        options.setdefault("connect_timeout", 10)
    config["OPTIONS"] = options
    config["CONN_MAX_AGE"] = 0
    return config


DEBUG = env_bool("DEBUG")
SECRET_KEY = os.environ.get("SECRET_KEY", "") or DEV_SECRET_KEY
if not DEBUG and SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set: the development default is refused when DEBUG is off."
    )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "rest_framework.authtoken",
    "tests.library.monolith.lending",
    # The monolith-side outbox and capture triggers of the dual-write phase.
    "dualwrite.django_app",
]

MIDDLEWARE = [
    "tests.library.monolith.lending.middleware.RequestIdMiddleware",
    "dualwrite.django_app.middleware.CaptureRequestIdMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "tests.library.monolith.urls"
ASGI_APPLICATION = "tests.library.monolith.asgi.application"
WSGI_APPLICATION = "tests.library.monolith.wsgi.application"
APPEND_SLASH = False

DATABASES = {
    "default": database_config(os.environ.get("DATABASE_URL", "sqlite:///var/library.sqlite3"))
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = False
TEMPLATES: list[dict[str, Any]] = []

if os.environ.get("PASSWORD_HASHERS"):
    PASSWORD_HASHERS = env_list("PASSWORD_HASHERS", "")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "tests.library.monolith.lending.api.Pagination",
    "PAGE_SIZE": 20,
    "DEFAULT_FILTER_BACKENDS": ["rest_framework.filters.OrderingFilter"],
    "EXCEPTION_HANDLER": "tests.library.monolith.lending.api.exception_handler",
    "DATETIME_FORMAT": "%Y-%m-%dT%H:%M:%S.%fZ",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django": {"handlers": ["console"], "level": "WARNING", "propagate": False}},
}
