"""Charging and refunding orders through the provider."""

from __future__ import annotations

from typing import TYPE_CHECKING

from legacy_monolith.core.exceptions import PaymentFailed
from legacy_monolith.payments.models import Payment
from legacy_monolith.payments.provider import FakeProvider

if TYPE_CHECKING:
    from legacy_monolith.orders.models import Order

provider = FakeProvider()


def charge(order: Order, token: str) -> Payment:
    """Charge the order's total; :class:`PaymentFailed` (402) when the provider declines."""
    result = provider.charge(order.total, order.currency, token)
    if not result.approved:
        raise PaymentFailed(result.reason)
    return Payment.objects.create(
        order=order,
        amount=order.total,
        currency=order.currency,
        provider_reference=result.reference,
        card_last4=token[-4:] if token[-4:].isdigit() else "",
    )


def refund(payment: Payment) -> Payment:
    """Refund a succeeded payment in full."""
    provider.refund(payment.provider_reference, payment.amount)
    payment.status = Payment.Status.REFUNDED
    payment.save(update_fields=["status", "updated_at"])
    return payment
