"""The inventory service: warehouses, stock levels and reservations, in every data phase.

Files: ``main.py`` (app factory), ``config.py`` (Settings), ``db.py``, ``models.py``,
``schemas.py``, ``deps.py``, ``api.py``, ``crud.py`` (the write path), ``alembic/``.
"""
