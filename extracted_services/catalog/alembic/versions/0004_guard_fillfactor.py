"""The version guards' table leaves half of each page free (HOT updates of guards).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

from extracted_services.common.migrations import default_guard_fillfactor_v4, guard_fillfactor_v4

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    guard_fillfactor_v4(op)


def downgrade() -> None:
    default_guard_fillfactor_v4(op)
