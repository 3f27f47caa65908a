"""The payments port: how order code charges and refunds.

Callers hold ``ports.calling("payments")`` around the call (and around their
transaction, for the local side). In ``shared`` and ``dual_write`` it runs
:mod:`legacy_monolith.payments.services` in the caller's transaction; in ``split`` it
calls the payments service. Both sides are idempotent by order: a retried charge
returns the order's payment instead of charging again.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from dualwrite.django_app import ports
from legacy_monolith.core.exceptions import InvalidState, PaymentFailed
from legacy_monolith.orders.models import Order
from legacy_monolith.payments import services
from legacy_monolith.payments.models import Payment

CONTEXT = "payments"
PAGE_LIMIT = 100


def _cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def charge(order: Order, token: str, *, key: str = "") -> None:
    """Charge the order's total once (:class:`PaymentFailed` when declined)."""
    if not ports.remote(CONTEXT):
        if not order.payments.exists():
            services.charge(order, token)
        return
    body = {
        "order_id": order.pk,
        "amount_cents": _cents(order.total),
        "currency": order.currency,
        "token": token,
    }
    try:
        ports.client(CONTEXT).request("POST", "/api/v1/payments/charge/", json=body, request_id=key)
    except ports.RemoteRefused as exc:
        if exc.code == "payment_failed":
            raise PaymentFailed(exc.detail) from exc
        raise InvalidState(f"payments refused to charge order {order.pk}: {exc}") from exc


def _remote_payments(order_id: int, key: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    client = ports.client(CONTEXT)
    for page in range(1, PAGE_LIMIT + 1):
        params = {"order": order_id, "page": page}
        body = client.request("GET", "/api/v1/payments/", params=params, request_id=key).json()
        found += body["results"]
        if not body.get("next"):
            return found
    raise InvalidState(f"order {order_id} has more than {PAGE_LIMIT} pages of payments")


def refund_order(order: Order, *, key: str = "") -> None:
    """Refund every succeeded payment of the order (none: nothing to do)."""
    if not ports.remote(CONTEXT):
        for payment in order.payments.filter(status=Payment.Status.SUCCEEDED):
            services.refund(payment)
        return
    for payment in _remote_payments(order.pk, key):
        if payment["status"] == Payment.Status.SUCCEEDED:
            ports.client(CONTEXT).request(
                "POST", f"/api/v1/payments/{payment['id']}/refund/", request_id=key
            )
