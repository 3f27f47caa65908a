"""``Annotated`` dependency aliases of the lending API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from extracted_services.common import deps
from extracted_services.common.changes import ChangeRecorder
from extracted_services.common.references import ReferenceGuard
from extracted_services.common.serving import Serving
from extracted_services.common.store import TableView

ServingDep = Annotated[Serving, Depends(deps.serving)]
SessionDep = Annotated[Session, Depends(deps.session)]
WriteSessionDep = Annotated[Session, Depends(deps.write_session)]
ViewsDep = Annotated[dict[str, TableView], Depends(deps.views)]
ChangesDep = Annotated[ChangeRecorder, Depends(deps.changes)]
BodyDep = Annotated[deps.RawBody, Depends(deps.raw_body)]
ReferencesDep = Annotated[ReferenceGuard, Depends(deps.references)]
