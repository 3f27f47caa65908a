"""Where the payments service reads from in each phase, and who may see which payment.

The monolith's tables are declared here, read-only, as the anti-corruption layer sees
them (column names are the contract in ``migration_plans/templates/payments.yaml``).

Visibility follows the monolith's rule: staff see every payment, a customer only the
payments of their own orders. Neither fact is payments' own: the staff flag is the
monolith's user (the identity header carries only the user id) and an order's customer
belongs to the orders context, which still lives in the monolith. Both are read from
the monolith's ``auth_user``, ``customers_customer`` and ``orders_order`` through the
read-only engine in every phase (:func:`viewer_of`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    select,
)
from sqlalchemy.orm import Session

from extracted_services.common.store import TableView
from extracted_services.payments.crud import payments_pair
from extracted_services.payments.models import Payment
from migration_plans.core.phase import Phase

legacy_metadata = MetaData()

payments_payment = Table(
    "payments_payment",
    legacy_metadata,
    Column("id", BigInteger, primary_key=True),
    Column("order_id", BigInteger, nullable=False),
    Column("amount", Numeric(12, 2), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("provider_reference", String(64), nullable=False),
    Column("card_last4", String(4), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

auth_user = Table(
    "auth_user",
    legacy_metadata,
    Column("id", Integer, primary_key=True),
    Column("is_staff", Boolean, nullable=False),
)

customers_customer = Table(
    "customers_customer",
    legacy_metadata,
    Column("id", BigInteger, primary_key=True),
    Column("user_id", Integer, nullable=False),
)

orders_order = Table(
    "orders_order",
    legacy_metadata,
    Column("id", BigInteger, primary_key=True),
    Column("customer_id", BigInteger, nullable=False),
)


def views(phase: Phase) -> dict[str, TableView]:
    """The payments table as the phase reads it."""
    if phase is Phase.SHARED:
        return {"payments": TableView.monolith(payments_pair(), payments_payment)}
    return {"payments": TableView.service(payments_pair(), Payment.__table__)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class Viewer:
    """Which payments a caller may see: all (staff) or those of ``order_ids``."""

    staff: bool
    order_ids: tuple[int, ...] = ()


def viewer_of(monolith: Session, user_id: str) -> Viewer:
    """The caller's visibility, from the monolith's users, customers and orders."""
    try:
        user = int(user_id)
    except ValueError:
        return Viewer(staff=False)
    staff = monolith.scalar(select(auth_user.c.is_staff).where(auth_user.c.id == user))
    if staff:
        return Viewer(staff=True)
    owned = select(orders_order.c.id).join(
        customers_customer, customers_customer.c.id == orders_order.c.customer_id
    )
    orders = monolith.scalars(owned.where(customers_customer.c.user_id == user))
    return Viewer(staff=False, order_ids=tuple(sorted(orders)))


def order_exists(monolith: Session, order_id: int) -> bool:
    """Whether the monolith has the order (``?order=`` is a choice among all orders)."""
    found = monolith.scalar(select(orders_order.c.id).where(orders_order.c.id == order_id))
    return found is not None
