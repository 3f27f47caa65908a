"""The payments service's app factory.

uvicorn --factory extracted_services.payments.main:create_app
strangler service serve payments --port 8103
"""

from __future__ import annotations

from fastapi import FastAPI

from extracted_services.common.app import create_service_app
from extracted_services.payments import api, db
from extracted_services.payments.config import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """The payments API, following the published phase unless the settings pin one (settings
    from the environment by default)."""
    return create_service_app(
        settings or Settings(), router=api.router, views=db.views, title="payments service"
    )
