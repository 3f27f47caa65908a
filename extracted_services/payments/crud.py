"""The payments' write path: every change to the payments table is reported to a ChangeSink.

A charge is idempotent by order: ``order_id`` is unique, an order that already has a
payment gets that payment back (``created`` false) and the provider is not called
again. Two charges of one order racing each other both try the insert inside a
savepoint; the loser's fails on the unique key (PostgreSQL makes it wait for the
winner's commit; SQLite serialises writers with ``BEGIN IMMEDIATE``), is rolled back
with its outbox event, and returns the winner's row. A refund locks the row and is a
no-op on a refunded payment. Functions take a Session whose transaction the caller owns.

    with session.begin():
        payment, created = charge(session, ChargeRequest(42, 7919, "EUR", "tok_visa"),
                                  changes=changes)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from extracted_services.common.changes import ChangeRecorder
from extracted_services.common.crud import save
from extracted_services.common.errors import InvalidState, NotFound, PaymentFailed
from extracted_services.common.models import utcnow
from extracted_services.payments.models import Payment, PaymentStatus
from extracted_services.payments.provider import FakeProvider
from migration_plans.core.mapping import ContextMapping, TableMapping
from migration_plans.core.outbox import Operation
from migration_plans.core.settings import mapping_for

CONTEXT = "payments"

provider = FakeProvider()


@cache
def payments_mapping() -> ContextMapping:
    """The payments' field mapping (``migration_plans/templates/payments.yaml``)."""
    return mapping_for(CONTEXT)


def payments_pair() -> TableMapping:
    return payments_mapping().table("payments")


@dataclass(frozen=True)
class ChargeRequest:
    """Charge ``amount_cents`` in ``currency`` to the card behind ``token`` for an order."""

    order_id: int
    amount_cents: int
    currency: str
    token: str


def payment_of_order(session: Session, order_id: int) -> Payment | None:
    return session.scalars(select(Payment).where(Payment.order_id == order_id)).first()


def _same_charge(payment: Payment, request: ChargeRequest) -> Payment:
    if (payment.amount_cents, payment.currency) != (request.amount_cents, request.currency):
        raise InvalidState(
            f"Order {request.order_id} was already charged {payment.amount_cents} "
            f"{payment.currency} (payment {payment.id})."
        )
    return payment


def _insert(session: Session, payment: Payment, changes: ChangeRecorder) -> bool:
    """Insert inside a savepoint; ``False`` when another charge of the order won the race."""
    try:
        with session.begin_nested():
            save(
                session, payment, table=payments_pair(), operation=Operation.INSERT, changes=changes
            )
    except IntegrityError:  # the savepoint's rollback took the pending row out of the session
        return False
    return True


def charge(
    session: Session, request: ChargeRequest, *, changes: ChangeRecorder
) -> tuple[Payment, bool]:
    """The order's payment and whether this call created it; :class:`PaymentFailed` when
    the card is declined (nothing is written), :class:`InvalidState` when the order was
    already charged a different amount or currency."""
    existing = payment_of_order(session, request.order_id)
    if existing is not None:
        return _same_charge(existing, request), False
    result = provider.charge(
        request.amount_cents,
        request.currency,
        request.token,
        idempotency_key=f"order-{request.order_id}",
    )
    if not result.approved:
        raise PaymentFailed(result.reason)
    now = utcnow()
    payment = Payment(
        order_id=request.order_id,
        amount_cents=request.amount_cents,
        currency=request.currency,
        status=PaymentStatus.SUCCEEDED.value,
        provider_reference=result.reference,
        card_last4=request.token[-4:] if request.token[-4:].isdigit() else "",
        created_at=now,
        updated_at=now,
    )
    if _insert(session, payment, changes):
        return payment, True
    winner = payment_of_order(session, request.order_id)
    if winner is None:  # the unique key that failed was not the order's
        raise InvalidState(f"Order {request.order_id} could not be charged; try again.")
    return _same_charge(winner, request), False


def refund(session: Session, payment_id: int, *, changes: ChangeRecorder) -> Payment:
    """Refund a payment in full; a refunded payment is returned unchanged."""
    payment = session.scalars(
        select(Payment).where(Payment.id == payment_id).with_for_update()
    ).first()
    if payment is None:
        raise NotFound()
    if payment.status == PaymentStatus.REFUNDED.value:
        return payment
    provider.refund(payment.provider_reference, payment.amount_cents)
    payment.status = PaymentStatus.REFUNDED.value
    payment.updated_at = utcnow()
    save(session, payment, table=payments_pair(), operation=Operation.UPDATE, changes=changes)
    return payment


def create_payment(session: Session, payment: Payment, *, changes: ChangeRecorder) -> Payment:
    """Store a payment as it is (a backfill or a test seeding rows with known ids)."""
    save(session, payment, table=payments_pair(), operation=Operation.INSERT, changes=changes)
    return payment
