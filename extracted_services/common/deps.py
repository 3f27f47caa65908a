"""Dependencies every service's ``deps.py`` builds its ``Annotated`` aliases from."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from extracted_services.common.changes import ChangeRecorder
from extracted_services.common.errors import ParseError, PhaseReadOnly, UnsupportedMediaType
from extracted_services.common.identity import require_identity
from extracted_services.common.references import ReferenceGuard
from extracted_services.common.serving import Serving
from extracted_services.common.shadow import in_sandbox, sandbox_session
from extracted_services.common.store import TableView
from migration_plans.core.identity import Identity
from migration_plans.core.phase import Phase


async def serving(request: Request) -> Serving:
    """The phase this request is served in: taken once, when it starts, kept to its end.

    A switch installs a new :class:`Serving` on ``app.state``; a request that started
    before keeps reading and writing through the one it took, never a mix of two phases.
    """
    taken: Serving | None = getattr(request.state, "serving", None)
    if taken is None:
        taken = request.app.state.serving
        request.state.serving = taken
    return taken


Current = Annotated[Serving, Depends(serving)]


def session(current: Current) -> Iterator[Session]:
    """A reading session on the phase's database (the monolith's, read-only, in shared)."""
    with current.sessions() as opened:
        yield opened


def write_session(request: Request, current: Current) -> Iterator[Session]:
    """A writing session on the service's database (SQLite: BEGIN IMMEDIATE); for a
    shadow write in the sandbox, one whose commits are all rolled back."""
    if in_sandbox(request):
        with sandbox_session(current.engine) as sandboxed:
            yield sandboxed
        return
    with current.write_sessions() as opened:
        yield opened


def views(current: Current) -> dict[str, TableView]:
    """The phase's view of every table pair, by pair name."""
    return current.views


def changes(
    request: Request,
    identity: Annotated[Identity, Depends(require_identity)],
    current: Current,
) -> ChangeRecorder:
    """The write path's hook; 401 without a valid identity, 409 in the shared phase."""
    if current.read_only:
        raise PhaseReadOnly(
            f"{current.context} is in the {current.phase.value} phase: writes go to the monolith."
        )
    return ChangeRecorder(
        context=current.context,
        sink=None if in_sandbox(request) else current.sink,  # a sandbox writes no outbox
        request_id=request.scope.get("state", {}).get("request_id"),
    )


def references(request: Request, current: Current) -> ReferenceGuard:
    """The delete check against rows other contexts still keep in the monolith."""
    app = request.app

    def monolith() -> Engine | None:
        if not app.state.settings.monolith_database_url:
            return None
        engine: Engine = app.state.live.engines.for_phase(Phase.SHARED)
        return engine

    return ReferenceGuard(current.context, monolith=monolith)


@dataclass(frozen=True)
class RawBody:
    """The request body, parsed only when the handler needs it (after 401/404 checks, as DRF)."""

    content: bytes
    media_type: str

    def json(self) -> Any:
        """The body as DRF's ``request.data`` sees it (an empty body is ``{}``)."""
        if not self.content:
            return {}
        if self.media_type != "application/json":  # none at all is refused too, like DRF
            raise UnsupportedMediaType(f'Unsupported media type "{self.media_type}" in request.')
        try:
            return json.loads(self.content)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc


async def raw_body(request: Request) -> RawBody:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return RawBody(await request.body(), media_type)
