"""Django app of the monolith side: ``strangler_outbox``, the relay's tables and the capture triggers.

Add ``"dualwrite.django_app"`` to ``INSTALLED_APPS`` and run ``migrate``: the migrations
create the tables and install the triggers on every mapped table (PostgreSQL and
SQLite). Capture stays off per context until ``strangler dualwrite backfill`` (or
``strangler dualwrite capture CONTEXT --on``) switches it on. Optional: add
:class:`dualwrite.django_app.middleware.CaptureRequestIdMiddleware` after the request-id
middleware so captured events carry the request's ``X-Request-ID`` (PostgreSQL).

Monolith code that calls an extracted context goes through :mod:`.ports` (local in
shared/dual_write, the service's API in split, following the live phase), and a
multi-context transaction becomes a saga (:mod:`.saga`, table ``strangler_saga``) run
by the monolith's Celery worker (:mod:`.saga_tasks`, sweeper in :mod:`.saga_schedule`).
"""
