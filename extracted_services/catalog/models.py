"""The catalog service's tables: a cleaner model than the monolith's ``catalog_*``.

Deliberate changes, each mapped in ``migration_plans/templates/catalog.yaml``: ``title``
instead of ``name``, ``price_cents`` (integer minor units) instead of a decimal
``price``, ``status`` ('active' | 'archived') instead of the ``is_active`` flag.
Ids are the monolith's ids for rows that came from it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from extracted_services.common.models import Id, service_metadata, utcnow


class Base(DeclarativeBase):
    metadata = service_metadata()


class ProductStatus(StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"


class Category(Base):
    """A product category."""

    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")


class Product(Base):
    """A sellable product; ``price_cents`` is the current list price in minor units."""

    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("price_cents >= 0", name="price_not_negative"),
        CheckConstraint("status IN ('active', 'archived')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    price_cents: Mapped[int] = mapped_column(Id)
    status: Mapped[str] = mapped_column(String(16), default=ProductStatus.ACTIVE.value)
    category_id: Mapped[int] = mapped_column(
        Id, ForeignKey("categories.id", ondelete="RESTRICT"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
