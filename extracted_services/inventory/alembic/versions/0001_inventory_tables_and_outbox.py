"""Inventory tables (warehouses, stock_levels, reservations) and the service-side outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
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
        "warehouses",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_warehouses"),
        sa.UniqueConstraint("code", name="uq_warehouses_code"),
    )
    op.create_table(
        "stock_levels",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("product_id", Id, nullable=False),
        sa.Column("warehouse_id", Id, nullable=False),
        sa.Column("on_hand", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stock_levels"),
        sa.UniqueConstraint(
            "product_id", "warehouse_id", name="uq_stock_levels_product_warehouse"
        ),
        sa.ForeignKeyConstraint(
            ["warehouse_id"],
            ["warehouses.id"],
            name="fk_stock_levels_warehouse_id_warehouses",
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint("on_hand >= 0", name="ck_stock_levels_on_hand_not_negative"),
        sa.CheckConstraint("reserved >= 0", name="ck_stock_levels_reserved_not_negative"),
        sa.CheckConstraint(
            "reserved <= on_hand", name="ck_stock_levels_reserved_within_on_hand"
        ),
    )
    op.create_index("ix_stock_levels_product_id", "stock_levels", ["product_id"])
    op.create_index("ix_stock_levels_warehouse_id", "stock_levels", ["warehouse_id"])
    op.create_table(
        "reservations",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("order_id", Id, nullable=False),
        sa.Column("stock_level_id", Id, nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reservations"),
        sa.ForeignKeyConstraint(
            ["stock_level_id"],
            ["stock_levels.id"],
            name="fk_reservations_stock_level_id_stock_levels",
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint("quantity > 0", name="ck_reservations_quantity_positive"),
        sa.CheckConstraint(
            "state IN ('held', 'released')", name="ck_reservations_state_known"
        ),
    )
    op.create_index("ix_reservations_order_id", "reservations", ["order_id"])
    op.create_index("ix_reservations_stock_level_id", "reservations", ["stock_level_id"])
    create_outbox_v1(op)


def downgrade() -> None:
    op.drop_table("strangler_outbox")
    op.drop_index("ix_reservations_stock_level_id", table_name="reservations")
    op.drop_index("ix_reservations_order_id", table_name="reservations")
    op.drop_table("reservations")
    op.drop_index("ix_stock_levels_warehouse_id", table_name="stock_levels")
    op.drop_index("ix_stock_levels_product_id", table_name="stock_levels")
    op.drop_table("stock_levels")
    op.drop_table("warehouses")
