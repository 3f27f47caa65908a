"""The lending service's app factory.

strangler service serve lending --port 8111   (plan: service_module tests.library.services.lending)
"""

from __future__ import annotations

from fastapi import FastAPI

from extracted_services.common.app import create_service_app
from tests.library.services.lending import api, db
from tests.library.services.lending.config import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """The lending API, following the published phase unless the settings pin one."""
    return create_service_app(
        settings or Settings(), router=api.router, views=db.views, title="lending service"
    )
