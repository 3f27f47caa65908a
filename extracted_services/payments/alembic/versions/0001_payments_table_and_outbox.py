"""The payments table and the service-side outbox.

Revision ID: 0001
Revises:
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from extracted_services.common.migrations import create_outbox_v1

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "payments",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("order_id", Id, nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("provider_reference", sa.String(64), nullable=False),
        sa.Column("card_last4", sa.String(4), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_payments"),
        sa.UniqueConstraint("order_id", name="uq_payments_order_id"),
        sa.UniqueConstraint("provider_reference", name="uq_payments_provider_reference"),
        sa.CheckConstraint("amount_cents >= 0", name="ck_payments_amount_not_negative"),
        sa.CheckConstraint(
            "status IN ('succeeded', 'refunded')", name="ck_payments_status_known"
        ),
    )
    create_outbox_v1(op)


def downgrade() -> None:
    op.drop_table("strangler_outbox")
    op.drop_table("payments")
