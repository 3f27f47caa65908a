"""The outbox's event_id loses its unique index (unique by construction, never looked up).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

from extracted_services.common.migrations import event_id_not_unique_v5, event_id_unique_v5

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    event_id_not_unique_v5(op)


def downgrade() -> None:
    event_id_unique_v5(op)
