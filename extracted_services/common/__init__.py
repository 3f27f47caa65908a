"""Plumbing every extracted service shares: the served phase (``serving``, switched live by
``live``, with its inline relay in ``relay``), settings, errors, identity, request ids,
JSON logs, metrics, pagination, database engines, the write-path hook and Alembic helpers."""
