"""The inventory service's app factory.

uvicorn --factory extracted_services.inventory.main:create_app
strangler service serve inventory --port 8102
"""

from __future__ import annotations

from fastapi import FastAPI

from extracted_services.common.app import create_service_app
from extracted_services.inventory import api, db
from extracted_services.inventory.config import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """The inventory API, following the published phase unless the settings pin one (settings
    from the environment by default)."""
    return create_service_app(
        settings or Settings(), router=api.router, views=db.views, title="inventory service"
    )
