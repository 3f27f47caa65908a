"""Shadow copies never write: the guard every service's router runs first.

A request carrying ``X-Strangler-Shadow`` (the proxy's mirror) with an unsafe method
is a copy of a write the primary already made. The service either refuses it or runs
it in a sandbox, by its ``<CONTEXT>_SHADOW_WRITES`` setting:

- ``refuse`` (default): 403 ``shadow_write_refused``, nothing is read or written.
- ``sandbox``: the handler runs as usual on a session joined to an outer transaction
  that is always rolled back (its own ``commit`` only releases a SAVEPOINT), and the
  change recorder has no sink, so no row and no outbox event survive the request. The
  answer (status, body, even the id a sequence handed out) is what the write would have
  given, which is what the proxy compares. Sequences still move on PostgreSQL: ids are
  never reused, only skipped.

The proxy mirrors unsafe methods only to routes whose ``shadow:`` block declares the
candidate ``side_effect_free: true``; a service in ``sandbox`` mode is what makes that
declaration true.

    app.include_router(router, dependencies=[Depends(shadow_guard)])
    with sandbox_session(engine) as session: ...   # what deps.write_session yields then
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from extracted_services.common.errors import ShadowWriteRefused
from migration_plans.core.shadow import SHADOW_HEADER, is_shadow_write

__all__ = ["in_sandbox", "sandbox_session", "shadow_guard"]

_SANDBOX = "shadow_sandbox"


def shadow_guard(request: Request) -> None:
    """Refuse a shadow copy of a write (403), or mark it to run in the sandbox."""
    if not is_shadow_write(request.method, request.headers.get(SHADOW_HEADER)):
        return
    settings = request.app.state.settings
    if settings.shadow_writes != "sandbox":
        raise ShadowWriteRefused(
            f"{request.method} {request.url.path}: {settings.context} refuses shadow copies "
            f"of writes ({SHADOW_HEADER}); set {settings.context.upper()}_SHADOW_WRITES=sandbox "
            "to run them in a transaction that is rolled back."
        )
    setattr(request.state, _SANDBOX, True)


def in_sandbox(request: Request) -> bool:
    """Whether this request is a shadow write running in the sandbox."""
    return bool(getattr(request.state, _SANDBOX, False))


@contextmanager
def sandbox_session(engine: Engine) -> Iterator[Session]:
    """A writing session whose every commit is undone: it joins an outer transaction
    (SAVEPOINTs for the handler's own ``begin()``) that is rolled back at the end."""
    with engine.connect() as connection:
        outer = connection.begin()
        session = Session(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            session.close()
            outer.rollback()
