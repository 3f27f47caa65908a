"""Alembic environment of the catalog service (the body is shared by every service)."""

from alembic import context

from dualwrite.schema import service_side_metadata
from extracted_services.catalog.models import Base
from extracted_services.common.migrations import run_migrations

run_migrations(context, [Base.metadata, service_side_metadata()])
