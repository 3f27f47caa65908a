"""Dependencies every service's ``deps.py`` builds its ``Annotated`` aliases from."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from extracted_services.common.changes import ChangeRecorder
from extracted_services.common.errors import ParseError, PhaseReadOnly, UnsupportedMediaType
from extracted_services.common.identity import require_identity
from extracted_services.common.settings import ServiceSettings
from extracted_services.common.store import TableView
from migration_plans.core.identity import Identity


def session(request: Request) -> Iterator[Session]:
    """A reading session on the phase's database (the monolith's, read-only, in shared)."""
    with request.app.state.sessions() as current:
        yield current


def write_session(request: Request) -> Iterator[Session]:
    """A writing session on the service's database (SQLite: BEGIN IMMEDIATE)."""
    with request.app.state.write_sessions() as current:
        yield current


def views(request: Request) -> dict[str, TableView]:
    """The phase's view of every table pair, by pair name."""
    result: dict[str, TableView] = request.app.state.views
    return result


def changes(
    request: Request, identity: Annotated[Identity, Depends(require_identity)]
) -> ChangeRecorder:
    """The write path's hook; 401 without a valid identity, 409 in the shared phase."""
    current: ServiceSettings = request.app.state.settings
    if not current.phase.owns_database:
        raise PhaseReadOnly(
            f"{current.context} is in the {current.phase.value} phase: writes go to the monolith."
        )
    return ChangeRecorder(
        context=current.context,
        sink=request.app.state.sink,
        request_id=request.scope.get("state", {}).get("request_id"),
    )


@dataclass(frozen=True)
class RawBody:
    """The request body, parsed only when the handler needs it (after 401/404 checks, as DRF)."""

    content: bytes
    media_type: str

    def json(self) -> Any:
        """The body as DRF's ``request.data`` sees it (an empty body is ``{}``)."""
        if not self.content or not self.media_type:
            return {}
        if self.media_type != "application/json":
            raise UnsupportedMediaType(f'Unsupported media type "{self.media_type}" in request.')
        try:
            return json.loads(self.content)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc


async def raw_body(request: Request) -> RawBody:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return RawBody(await request.body(), media_type)
