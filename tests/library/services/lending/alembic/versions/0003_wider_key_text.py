"""Key texts up to 512 characters in the outbox and the relay's tables (were 64).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

from extracted_services.common.migrations import narrow_key_text_v3, widen_key_text_v3

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    widen_key_text_v3(op)


def downgrade() -> None:
    narrow_key_text_v3(op)
