"""The part of every service's app factory that is the same for all of them.

The app serves one :class:`~extracted_services.common.serving.Serving` at a time,
switched while it runs as the control plane publishes phases
(:class:`~extracted_services.common.live.LivePhase`); ``/healthz`` and ``/readyz`` say
which phase and epoch.

    app = create_service_app(settings, router=api.router, views=db.views, title="catalog")
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from extracted_services.common.errors import Unavailable
from extracted_services.common.handlers import install_error_handlers
from extracted_services.common.hosts import AllowedHostsMiddleware
from extracted_services.common.live import LivePhase
from extracted_services.common.logs import configure_logging
from extracted_services.common.methods import MethodsMiddleware
from extracted_services.common.metrics import MetricsMiddleware, metrics_endpoint
from extracted_services.common.requestid import RequestIdMiddleware
from extracted_services.common.serving import Serving, Views
from extracted_services.common.settings import ServiceSettings
from extracted_services.common.shadow import shadow_guard


def _status(status: str, serving: Serving) -> dict[str, str | int]:
    return {
        "status": status,
        "service": serving.context,
        "phase": serving.phase.value,
        "epoch": serving.epoch,
    }


def create_service_app(
    settings: ServiceSettings, *, router: APIRouter, views: Views, title: str
) -> FastAPI:
    """A FastAPI app serving ``router``, following the published phase unless it is pinned;
    refuses an incomplete config."""
    settings.check_runnable()
    configure_logging()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(live.start)
        yield
        await asyncio.to_thread(live.stop)

    app = FastAPI(title=title, redirect_slashes=False, lifespan=lifespan, docs_url=None)
    app.router.redirect_slashes = False
    app.state.settings = settings
    live = LivePhase(settings, views=views, state=app.state)
    app.state.live = live
    install_error_handlers(app)
    app.add_middleware(MethodsMiddleware)
    app.add_middleware(MetricsMiddleware, service=settings.context)
    app.add_middleware(AllowedHostsMiddleware, allowed=settings.hosts)
    app.add_middleware(RequestIdMiddleware)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str | int]:
        """Liveness, with the phase and epoch the process serves."""
        return _status("ok", live.serving)

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> dict[str, str | int]:
        """Readiness: the database the current phase reads answers (503 otherwise)."""
        serving = live.serving
        try:
            with serving.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise Unavailable(f"{settings.context}: database unreachable") from exc
        return _status("ready", serving)

    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    app.include_router(router, dependencies=[Depends(shadow_guard)])
    return app
