"""The extracted services: one FastAPI package per bounded context that left the monolith.

``catalog``, ``inventory`` and ``payments`` have the same files (``main.py``, ``config.py``, ``db.py``,
``models.py``, ``schemas.py``, ``deps.py``, ``api.py``, ``crud.py``, ``alembic/``);
``common`` is their shared plumbing. ``strangler service`` (``cli.py``) serves and migrates them.
"""
