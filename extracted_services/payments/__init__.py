"""The payments service: charges and refunds of orders, in every data phase.

Files: ``main.py`` (app factory), ``config.py`` (Settings), ``db.py``, ``models.py``,
``schemas.py``, ``deps.py``, ``api.py``, ``crud.py`` (the write path), ``alembic/``.
"""
