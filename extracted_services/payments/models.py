"""The payments service's table: money as integer cents, one payment per order.

Deliberate changes, each mapped in ``migration_plans/templates/payments.yaml``: the
amount is ``amount_cents`` (an integer of minor units, not a decimal); ``order_id`` is
a plain integer (orders belong to the orders context) and unique, which is what makes
a retried charge of the same order find the first one instead of charging twice.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, DateTime, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from extracted_services.common.models import Id, service_metadata, utcnow


class Base(DeclarativeBase):
    metadata = service_metadata()


class PaymentStatus(StrEnum):
    SUCCEEDED = "succeeded"
    REFUNDED = "refunded"


class Payment(Base):
    """A successful charge of an order; refunding it changes its ``status``."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount_cents >= 0", name="amount_not_negative"),
        CheckConstraint("status IN ('succeeded', 'refunded')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(Id, unique=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    status: Mapped[str] = mapped_column(String(16), default=PaymentStatus.SUCCEEDED.value)
    provider_reference: Mapped[str] = mapped_column(String(64), unique=True)
    card_last4: Mapped[str] = mapped_column(String(4), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
