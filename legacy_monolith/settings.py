"""Django settings of the legacy shop, read from the environment.

Environment:
    DATABASE_URL   default ``sqlite:///var/monolith.sqlite3`` (relative to the working directory);
                   ``postgresql://`` URLs use psycopg 3.
    SECRET_KEY     required unless DEBUG is on (the development default is refused otherwise).
    DEBUG          ``true``/``false`` (default false).
    ALLOWED_HOSTS  comma-separated (default ``localhost,127.0.0.1,[::1],testserver``).
    MONOLITH_PAYMENTS_FAIL  ``true`` makes the fake payment provider decline every charge.
    MONOLITH_ACCESS_LOG     ``false`` silences the per-request JSON access log line.
    LOG_LEVEL      default ``INFO``.
    PASSWORD_HASHERS comma-separated hasher classes (default: Django's; tests use MD5 for speed).
    DB_CONN_MAX_AGE  persistent connection lifetime in seconds (default 0; only for WSGI servers).
    MONOLITH_ORDER_WAIT_SECONDS  how long an order request waits for its saga (inventory or
                   payments split) before answering 202 PENDING (default 5).
    CELERY_BROKER_URL  the monolith's Celery broker (sagas); default ``STRANGLER_BROKER_URL``,
                   else kombu's SQLAlchemy transport on ``var/broker.sqlite3``.
Ports to extracted services (see ``dualwrite.django_app.ports``): ``<CONTEXT>_SERVICE_URL``,
``STRANGLER_IDENTITY_KEY``, ``STRANGLER_PORT_*``; sagas: ``STRANGLER_SAGA_*``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from dualwrite.django_app.saga_schedule import saga_queue, sweep_schedule

DEV_SECRET_KEY = "django-insecure-strangler-development-key-do-not-use-in-production"


def env_bool(name: str, default: bool = False) -> bool:
    """Read a boolean environment variable (``1/true/yes/on``)."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    """Read a comma-separated environment variable."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def database_config(url: str) -> dict[str, Any]:
    """The DATABASES['default'] entry for ``url`` (SQLite tuned for concurrent writers)."""
    config: dict[str, Any] = dict(dj_database_url.parse(url))
    options: dict[str, Any] = dict(config.get("OPTIONS") or {})
    if config["ENGINE"] == "django.db.backends.sqlite3":
        name = str(config["NAME"])
        if name not in {"", ":memory:"}:
            Path(name).parent.mkdir(parents=True, exist_ok=True)
        options.setdefault("timeout", 30)
        options.setdefault("transaction_mode", "IMMEDIATE")
        options.setdefault("init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
    elif config["ENGINE"] == "django.db.backends.postgresql":
        options.setdefault("connect_timeout", 10)
    config["OPTIONS"] = options
    # Keep 0 under the ASGI handler (a thread per request); gunicorn gthread may persist.
    config["CONN_MAX_AGE"] = int(os.environ.get("DB_CONN_MAX_AGE", "0"))
    config["CONN_HEALTH_CHECKS"] = config["CONN_MAX_AGE"] > 0
    config["ATOMIC_REQUESTS"] = False
    return config


BASE_DIR = Path(__file__).resolve().parent
DEBUG = env_bool("DEBUG")
SECRET_KEY = os.environ.get("SECRET_KEY", "") or DEV_SECRET_KEY
if not DEBUG and SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set: the development default is refused when DEBUG is off. "
        "Set SECRET_KEY (or DEBUG=true for local development)."
    )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "legacy_monolith.core",
    "legacy_monolith.customers",
    "legacy_monolith.catalog",
    "legacy_monolith.inventory",
    "legacy_monolith.orders",
    "legacy_monolith.payments",
    "legacy_monolith.shipping",
    # Monolith-side outbox and capture triggers of the dual-write phase (off until backfill).
    "dualwrite.django_app",
]

MIDDLEWARE = [
    "legacy_monolith.core.middleware.RequestIdMiddleware",
    "dualwrite.django_app.middleware.CaptureRequestIdMiddleware",
    "legacy_monolith.core.middleware.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "legacy_monolith.urls"
ASGI_APPLICATION = "legacy_monolith.asgi.application"
WSGI_APPLICATION = "legacy_monolith.wsgi.application"
APPEND_SLASH = False

DATABASES = {
    "default": database_config(os.environ.get("DATABASE_URL", "sqlite:///var/monolith.sqlite3"))
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False

TEMPLATES: list[dict[str, Any]] = []

if os.environ.get("PASSWORD_HASHERS"):
    # e.g. the test suite: django.contrib.auth.hashers.MD5PasswordHasher (fast, not for production)
    PASSWORD_HASHERS = env_list("PASSWORD_HASHERS", "")

PAYMENTS_FAIL = env_bool("MONOLITH_PAYMENTS_FAIL")
ORDER_SAGA_WAIT_SECONDS = float(os.environ.get("MONOLITH_ORDER_WAIT_SECONDS", "") or 5.0)
if not 0 <= ORDER_SAGA_WAIT_SECONDS <= 120:
    raise ImproperlyConfigured(
        f"MONOLITH_ORDER_WAIT_SECONDS={ORDER_SAGA_WAIT_SECONDS} is outside [0, 120] seconds."
    )

CELERY_BROKER_URL = (
    os.environ.get("CELERY_BROKER_URL")
    or os.environ.get("STRANGLER_BROKER_URL")
    or "sqla+sqlite:///var/broker.sqlite3"
)
if "sqlite:///" in CELERY_BROKER_URL:  # kombu's SQLAlchemy transport needs the folder
    Path(CELERY_BROKER_URL.split("sqlite:///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_DEFAULT_QUEUE = saga_queue()
CELERY_BEAT_SCHEDULE = sweep_schedule()  # resumes due retries and sagas of crashed runs
if CELERY_BROKER_URL.startswith("redis"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
        "visibility_timeout": 3600,
    }
ACCESS_LOG = env_bool("MONOLITH_ACCESS_LOG", default=True)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "legacy_monolith.core.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "legacy_monolith.core.filters.OrderingFilter",
    ],
    "EXCEPTION_HANDLER": "legacy_monolith.core.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "legacy_monolith.core.schema.ErrorsAutoSchema",
    "DATETIME_FORMAT": "%Y-%m-%dT%H:%M:%S.%fZ",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Legacy shop API",
    "DESCRIPTION": "The monolith's REST API that strangler migrates context by context.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "legacy_monolith.core.logging.RequestIdFilter"}},
    "formatters": {"json": {"()": "legacy_monolith.core.logging.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}
