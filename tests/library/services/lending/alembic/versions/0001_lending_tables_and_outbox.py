"""Lending tables (branches, books, copies, members, member_contacts, loans) and the outbox.

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
Moment = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "branches",
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("city", sa.String(100), nullable=True),
        sa.PrimaryKeyConstraint("code", name="pk_branches"),
    )
    op.create_table(
        "books",
        sa.Column("isbn", sa.String(13), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("published_year", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("isbn", name="pk_books"),
    )
    op.create_table(
        "copies",
        sa.Column("branch_code", sa.String(16), nullable=False),
        sa.Column("isbn", sa.String(13), nullable=False),
        sa.Column("copy_no", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("condition", sa.String(16), nullable=False),
        sa.Column("shelved_at", Moment, nullable=False),
        sa.PrimaryKeyConstraint("branch_code", "isbn", "copy_no", name="pk_copies"),
        sa.CheckConstraint(
            "condition IN ('new', 'good', 'worn', 'damaged')", name="ck_copies_condition_known"
        ),
    )
    op.create_index("ix_copies_isbn", "copies", ["isbn"])
    op.create_table(
        "members",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("joined_at", Moment, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_members"),
    )
    op.create_table(
        "member_contacts",
        sa.Column("member_id", Id, nullable=False, autoincrement=False),
        sa.Column("email", sa.String(200), nullable=False),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("member_id", name="pk_member_contacts"),
    )
    op.create_table(
        "loans",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("member_id", Id, nullable=False),
        sa.Column("isbn", sa.String(13), nullable=False),
        sa.Column("branch_code", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("fine_cents", Id, nullable=False),
        sa.Column("borrowed_at", Moment, nullable=False),
        sa.Column("due_at", Moment, nullable=False),
        sa.Column("book_title", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_loans"),
        sa.CheckConstraint(
            "status IN ('open', 'returned', 'overdue', 'lost')", name="ck_loans_status_known"
        ),
    )
    op.create_index("ix_loans_member_id", "loans", ["member_id"])
    op.create_index("ix_loans_isbn", "loans", ["isbn"])
    create_outbox_v1(op)


def downgrade() -> None:
    op.drop_table("strangler_outbox")
    op.drop_index("ix_loans_isbn", table_name="loans")
    op.drop_index("ix_loans_member_id", table_name="loans")
    op.drop_table("loans")
    op.drop_table("member_contacts")
    op.drop_table("members")
    op.drop_index("ix_copies_isbn", table_name="copies")
    op.drop_table("copies")
    op.drop_table("books")
    op.drop_table("branches")
