"""Placing and cancelling orders: the cross-context transaction of the monolith.

``place_order`` reads current prices (catalog), reserves stock with row locks
(inventory), writes the order and its lines (orders) and charges the card
(payments) in ONE database transaction: a declined payment or missing stock
leaves no trace.

    order = place_order(customer, [OrderRequestLine(product_id=7, quantity=2)], "tok_visa")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction

from legacy_monolith.catalog.models import Product
from legacy_monolith.core.exceptions import InvalidState
from legacy_monolith.core.metrics import ORDERS
from legacy_monolith.customers.models import Customer
from legacy_monolith.inventory import services as inventory
from legacy_monolith.orders.models import Order, OrderLine
from legacy_monolith.payments import services as payments


@dataclass(frozen=True)
class OrderRequestLine:
    """``quantity`` units of ``product_id``."""

    product_id: int
    quantity: int


def _current_products(lines: Sequence[OrderRequestLine]) -> dict[int, Product]:
    products = Product.objects.in_bulk({line.product_id for line in lines})
    for line in lines:
        product = products.get(line.product_id)
        if product is None or not product.is_active:
            raise InvalidState(f"Product {line.product_id} is not available.")
    return products


def _create_order(
    customer: Customer, lines: Sequence[OrderRequestLine], products: dict[int, Product]
) -> Order:
    total = sum(
        (products[line.product_id].price * line.quantity for line in lines), Decimal("0.00")
    )
    order = Order.objects.create(customer=customer, total=total)
    OrderLine.objects.bulk_create(
        OrderLine(
            order=order,
            product_id=line.product_id,
            quantity=line.quantity,
            unit_price=products[line.product_id].price,
        )
        for line in lines
    )
    return order


def place_order(customer: Customer, lines: Sequence[OrderRequestLine], payment_token: str) -> Order:
    """Price, reserve, record and charge an order atomically; returns the paid order."""
    try:
        with transaction.atomic():
            products = _current_products(lines)
            order = _create_order(customer, lines, products)
            inventory.reserve(
                order.pk,
                [inventory.StockRequest(line.product_id, line.quantity) for line in lines],
            )
            payments.charge(order, payment_token)
            order.status = Order.Status.PAID
            order.save(update_fields=["status", "updated_at"])
    except Exception as exc:
        ORDERS.labels(getattr(exc, "default_code", "error")).inc()
        raise
    ORDERS.labels("placed").inc()
    return order


def cancel_order(order: Order) -> Order:
    """Cancel a paid order: release its stock and refund its payment (409 otherwise)."""
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        if order.status != Order.Status.PAID:
            raise InvalidState(f"Order {order.pk} is {order.status} and cannot be cancelled.")
        inventory.release(order.pk)
        for payment in order.payments.filter(status="succeeded"):
            payments.refund(payment)
        order.status = Order.Status.CANCELLED
        order.save(update_fields=["status", "updated_at"])
        return order
