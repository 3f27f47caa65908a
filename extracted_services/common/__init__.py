"""Plumbing every extracted service shares: phase, settings, errors, identity, request ids,
JSON logs, metrics, pagination, database engines, the write-path hook and Alembic helpers."""
