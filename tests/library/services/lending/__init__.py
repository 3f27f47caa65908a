"""The lending service: branches, books, copies, members and loans, in every data phase.

Built like the shop's services on :mod:`extracted_services.common` (no library code in
the toolkit): ``main.py`` (app factory), ``config.py`` (Settings), ``db.py`` (what each
phase reads), ``models.py``, ``schemas.py``, ``crud.py`` (the write path), ``api.py``,
``alembic/``. The plan is ``tests/library/plans/lending.yaml``.
"""
