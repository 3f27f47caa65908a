"""``Annotated`` dependency aliases of the payments API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from extracted_services.common import deps
from extracted_services.common.changes import ChangeRecorder
from extracted_services.common.database import read_session_factory
from extracted_services.common.errors import PermissionDenied, Unavailable
from extracted_services.common.identity import require_identity
from extracted_services.common.serving import Serving
from extracted_services.common.store import TableView
from extracted_services.payments.db import Viewer, viewer_of
from migration_plans.core.identity import Identity
from migration_plans.core.phase import Phase

ServingDep = Annotated[Serving, Depends(deps.serving)]
SessionDep = Annotated[Session, Depends(deps.session)]
WriteSessionDep = Annotated[Session, Depends(deps.write_session)]
ViewsDep = Annotated[dict[str, TableView], Depends(deps.views)]
ChangesDep = Annotated[ChangeRecorder, Depends(deps.changes)]
BodyDep = Annotated[deps.RawBody, Depends(deps.raw_body)]


def monolith_session(request: Request) -> Iterator[Session]:
    """A read-only session on the monolith's database, in every phase (503 without its URL).

    Payments asks it who the caller is (staff or which orders are theirs): users,
    customers and orders are not payments' tables and still live in the monolith.
    """
    if not request.app.state.settings.monolith_database_url:
        raise Unavailable("payments: the monolith's database is not configured")
    engine = request.app.state.live.engines.for_phase(Phase.SHARED)
    with read_session_factory(engine)() as opened:
        yield opened


MonolithDep = Annotated[Session, Depends(monolith_session)]
IdentityDep = Annotated[Identity, Depends(require_identity)]


def viewer(identity: IdentityDep, monolith: MonolithDep) -> Viewer:
    """Which payments the caller may see; 401 without a valid identity."""
    return viewer_of(monolith, identity.sub)


ViewerDep = Annotated[Viewer, Depends(viewer)]


def staff(changes: ChangesDep, caller: ViewerDep) -> ChangeRecorder:
    """The write path's hook for staff only (the order saga runs as a staff user): 401 without
    an identity, 409 in the shared phase, 403 for a customer."""
    if not caller.staff:
        raise PermissionDenied()
    return changes


StaffChangesDep = Annotated[ChangeRecorder, Depends(staff)]
