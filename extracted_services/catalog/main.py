"""The catalog service's app factory.

uvicorn --factory extracted_services.catalog.main:create_app
strangler service serve catalog --port 8101
"""

from __future__ import annotations

from fastapi import FastAPI

from extracted_services.catalog import api, db
from extracted_services.catalog.config import Settings
from extracted_services.common.app import create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    """The catalog API, following the published phase unless the settings pin one (settings
    from the environment by default)."""
    return create_service_app(
        settings or Settings(), router=api.router, views=db.views, title="catalog service"
    )
