"""The lending service's tables: a cleaner model than the monolith's ``lending_*``.

Deliberate changes, each mapped in ``tests/library/plans/lending.yaml``: copies keyed by
``(branch_code, isbn, copy_no)``; members split into ``members`` and
``member_contacts``; loans keyed by a UUID the service generates (the id map pairs it
with the monolith's integer id), statuses and conditions spelled out, empty text as
NULL, a fine in cents (the monolith's decimal text through the ``cents_string``
transform), and ``book_title`` copied from the book (kept current by :mod:`.crud`).

No foreign keys between these tables: the dual-write relay applies each pair's events
in its own order, so a contact may arrive before its member.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, DateTime, Integer, String, Text, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from extracted_services.common.models import Id, service_metadata, utcnow

CONDITIONS = ("new", "good", "worn", "damaged")
STATUSES = ("open", "returned", "overdue", "lost")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


class Base(DeclarativeBase):
    metadata = service_metadata()


class Branch(Base):
    __tablename__ = "branches"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    city: Mapped[str | None] = mapped_column(String(100), nullable=True)


class Book(Base):
    __tablename__ = "books"

    isbn: Mapped[str] = mapped_column(String(13), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    author: Mapped[str] = mapped_column(String(200))
    published_year: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Copy(Base):
    __tablename__ = "copies"
    __table_args__ = (CheckConstraint(_one_of("condition", CONDITIONS), name="condition_known"),)

    branch_code: Mapped[str] = mapped_column(String(16), primary_key=True)
    isbn: Mapped[str] = mapped_column(String(13), primary_key=True, index=True)
    copy_no: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    condition: Mapped[str] = mapped_column(String(16), default="new")
    shelved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Member(Base):
    __tablename__ = "members"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MemberContact(Base):
    __tablename__ = "member_contacts"

    member_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    email: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    address: Mapped[str | None] = mapped_column(Text, nullable=True)


class Loan(Base):
    __tablename__ = "loans"
    __table_args__ = (CheckConstraint(_one_of("status", STATUSES), name="status_known"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    member_id: Mapped[int] = mapped_column(Id, index=True)
    isbn: Mapped[str] = mapped_column(String(13), index=True)
    branch_code: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open")
    meta: Mapped[Any] = mapped_column(JSON)
    notes: Mapped[str | None] = mapped_column(Text, nullable=True)
    fine_cents: Mapped[int] = mapped_column(Id, default=0)
    borrowed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    book_title: Mapped[str | None] = mapped_column(String(200), nullable=True)
