"""The inventory service's tables: a cleaner model than the monolith's ``inventory_*``.

Deliberate changes, each mapped in ``migration_plans/templates/inventory.yaml``: stock levels
say ``on_hand`` (not ``quantity``); a reservation has a ``state`` ('held' | 'released')
instead of a ``released`` flag and points at its ``stock_level_id``. ``product_id`` is a
plain integer: products belong to the catalog context.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from extracted_services.common.models import Id, service_metadata, utcnow


class Base(DeclarativeBase):
    metadata = service_metadata()


class ReservationState(StrEnum):
    HELD = "held"
    RELEASED = "released"


class Warehouse(Base):
    """A place that holds stock."""

    __tablename__ = "warehouses"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(100))


class StockLevel(Base):
    """Units of one product in one warehouse: ``on_hand``, of which ``reserved`` are held."""

    __tablename__ = "stock_levels"
    __table_args__ = (
        UniqueConstraint("product_id", "warehouse_id", name="uq_stock_levels_product_warehouse"),
        CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("reserved <= on_hand", name="reserved_within_on_hand"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    product_id: Mapped[int] = mapped_column(Id, index=True)
    warehouse_id: Mapped[int] = mapped_column(
        Id, ForeignKey("warehouses.id", ondelete="RESTRICT"), index=True
    )
    on_hand: Mapped[int] = mapped_column(Integer, default=0)
    reserved: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def available(self) -> int:
        """Units that can still be reserved."""
        return self.on_hand - self.reserved


class Reservation(Base):
    """Units of a stock level held for an order (``order_id`` is the orders context's id)."""

    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("state IN ('held', 'released')", name="state_known"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(Id, index=True)
    stock_level_id: Mapped[int] = mapped_column(
        Id, ForeignKey("stock_levels.id", ondelete="RESTRICT"), index=True
    )
    quantity: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=ReservationState.HELD.value)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
