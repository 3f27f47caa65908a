"""The dual-write relay's service-side tables (version guard, dead letter, backfill
checkpoint, id map).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from collections.abc import Sequence

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    from dualwrite.schema import create_service_relay_tables

    create_service_relay_tables()


def downgrade() -> None:
    from dualwrite.schema import drop_service_relay_tables

    drop_service_relay_tables()
