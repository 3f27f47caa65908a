"""The part of every service's app factory that is the same for all of them.

app = create_service_app(settings, router=api.router, views=db.views(settings.phase))
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from dualwrite.config import RelaySettings
from dualwrite.inline import InlineRelay, start_inline_relay
from extracted_services.common.changes import sink_for
from extracted_services.common.database import (
    read_session_factory,
    readonly_engine,
    service_engine,
    session_factory,
)
from extracted_services.common.errors import Unavailable
from extracted_services.common.handlers import install_error_handlers
from extracted_services.common.logs import configure_logging
from extracted_services.common.metrics import PHASE, MetricsMiddleware, metrics_endpoint
from extracted_services.common.requestid import RequestIdMiddleware
from extracted_services.common.settings import ServiceSettings
from extracted_services.common.store import TableView
from migration_plans.core.phase import Phase


def _start_inline_relay(settings: ServiceSettings) -> InlineRelay | None:
    """The dual-write inline relay of this service's context, when the settings ask for it."""
    if not settings.inline_relay:
        return None
    return start_inline_relay(RelaySettings.from_env(settings.context))


def create_service_app(
    settings: ServiceSettings,
    *,
    router: APIRouter,
    views: Callable[[Phase], dict[str, TableView]],
    title: str,
) -> FastAPI:
    """A FastAPI app serving ``router`` in ``settings.phase``; refuses an incomplete config."""
    settings.check_runnable()
    configure_logging()
    PHASE.labels(settings.context, settings.phase.value).set(1)
    if settings.phase is Phase.SHARED:
        engine = readonly_engine(settings.monolith_database_url, echo=settings.sql_echo)
    else:
        engine = service_engine(settings.database_url, echo=settings.sql_echo)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        inline = _start_inline_relay(settings) if app.state.sink is not None else None
        yield
        if inline is not None:
            inline.stop()
        engine.dispose()

    app = FastAPI(title=title, redirect_slashes=False, lifespan=lifespan, docs_url=None)
    app.router.redirect_slashes = False
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = read_session_factory(engine)
    app.state.write_sessions = session_factory(engine)
    app.state.views = views(settings.phase)
    app.state.sink = sink_for(settings)
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, service=settings.context)
    app.add_middleware(RequestIdMiddleware)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        """Liveness, with the phase the process serves."""
        return {"status": "ok", "service": settings.context, "phase": settings.phase.value}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> dict[str, str]:
        """Readiness: the database this phase reads answers (503 ``unavailable`` otherwise)."""
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise Unavailable(f"{settings.context}: database unreachable") from exc
        return {"status": "ready", "service": settings.context, "phase": settings.phase.value}

    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    app.include_router(router)
    return app
