"""Alembic environment of the inventory service (the body is shared by every service)."""

from alembic import context

from dualwrite.outbox import outbox_metadata
from extracted_services.common.migrations import run_migrations
from extracted_services.inventory.models import Base

run_migrations(context, [Base.metadata, outbox_metadata])
