"""Alembic environment of the lending service (the body is shared by every service)."""

from alembic import context

from dualwrite.schema import service_side_metadata
from extracted_services.common.migrations import run_migrations
from tests.library.services.lending.models import Base

run_migrations(context, [Base.metadata, service_side_metadata()])
