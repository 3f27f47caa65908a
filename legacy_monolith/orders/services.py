"""Placing and cancelling orders: the cross-context transaction of the monolith.

While inventory and payments live in the monolith (shared, dual_write), ``place_order``
reads current prices (catalog), reserves stock with row locks (inventory), writes the
order and its lines (orders) and charges the card (payments) in ONE database
transaction: a declined payment or missing stock leaves no trace.

Once either context is split its service is the truth, and the order becomes a saga
(:mod:`legacy_monolith.orders.saga`): the order is written PENDING with its saga, the
steps call the services through their ports, and the request waits for the outcome up
to ``settings.ORDER_SAGA_WAIT_SECONDS``. A failed saga is compensated and the order
CANCELLED (it stays visible, with the same 409/402 answer); an order still running when
the wait ends is answered 202 PENDING and finishes in the background.

    placed = place_order(customer, [OrderRequestLine(product_id=7, quantity=2)], "tok_visa")
    placed.order.status, placed.pending
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from dualwrite.django_app import ports, saga
from dualwrite.django_app.models import Saga
from legacy_monolith.catalog.models import Product
from legacy_monolith.core.exceptions import (
    InsufficientStock,
    InvalidState,
    PaymentFailed,
    ServiceUnavailable,
)
from legacy_monolith.core.metrics import ORDERS
from legacy_monolith.customers.models import Customer
from legacy_monolith.inventory import port as inventory
from legacy_monolith.inventory.services import StockRequest
from legacy_monolith.orders import saga as sagas
from legacy_monolith.orders.models import Order, OrderLine
from legacy_monolith.payments import port as payments
from legacy_monolith.shipping.models import Shipment

#: The contexts an order calls; when one is split, orders run as sagas.
CALLED_CONTEXTS = (inventory.CONTEXT, payments.CONTEXT)


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


@dataclass(frozen=True)
class Outcome:
    """An order after a request: ``pending`` when its saga was still running (202)."""

    order: Order
    pending: bool = False


def _saga_needed() -> bool:
    return any(ports.remote(context) for context in CALLED_CONTEXTS)


def _place_in_one_transaction(
    customer: Customer, lines: Sequence[OrderRequestLine], payment_token: str
) -> Order:
    with transaction.atomic():
        products = _current_products(lines)
        order = _create_order(customer, lines, products)
        inventory.reserve(
            order.pk, [StockRequest(line.product_id, line.quantity) for line in lines]
        )
        payments.charge(order, payment_token)
        order.status = Order.Status.PAID
        order.save(update_fields=["status", "updated_at"])
        return order


def _open_placement(
    customer: Customer, lines: Sequence[OrderRequestLine], payment_token: str
) -> tuple[Order, int]:
    """Write the PENDING order and its saga in one transaction."""
    with transaction.atomic():
        products = _current_products(lines)
        order = _create_order(customer, lines, products)
        row, _ = saga.start(
            sagas.PLACE_ORDER,
            key=sagas.saga_key(sagas.PLACE, order.pk),
            subject=sagas.subject(order.pk),
            payload={"order_id": order.pk, "payment_token": payment_token},
        )
        return order, row.pk


def _finished(order_id: int, row: Saga) -> Outcome:
    """The request's answer for a driven saga: the order, or the refusal it ended in."""
    order = Order.objects.get(pk=order_id)
    if row.state != saga.SagaState.COMPENSATED.value:
        return Outcome(order, pending=row.state != saga.SagaState.COMPLETED.value)
    if row.outcome == "insufficient_stock":
        raise InsufficientStock(row.last_error)
    if row.outcome == "payment_failed":
        raise PaymentFailed(row.last_error)
    if row.outcome.startswith("gave_up"):
        raise ServiceUnavailable(
            f"Order {order_id} was cancelled: a service did not answer ({row.last_error})."
        )
    raise InvalidState(f"Order {order_id} was cancelled: {row.outcome}: {row.last_error}")


def _wait_seconds() -> float:
    return float(settings.ORDER_SAGA_WAIT_SECONDS)


def place_order(
    customer: Customer, lines: Sequence[OrderRequestLine], payment_token: str
) -> Outcome:
    """Price, reserve, record and charge an order; the paid order (or a pending one, 202)."""
    try:
        with ports.calling(*CALLED_CONTEXTS):
            if not _saga_needed():
                outcome = Outcome(_place_in_one_transaction(customer, lines, payment_token))
            else:
                order, saga_id = _open_placement(customer, lines, payment_token)
                outcome = None
        if outcome is None:  # the saga's steps hold the ports themselves
            outcome = _finished(order.pk, saga.drive(saga_id, wait_s=_wait_seconds()))
    except Exception as exc:
        ORDERS.labels(getattr(exc, "default_code", "error")).inc()
        raise
    ORDERS.labels("pending" if outcome.pending else "placed").inc()
    return outcome


def _locked_paid_order(order: Order, verb: str) -> Order:
    """The order, row-locked; 409 unless it is PAID and no saga is working on it."""
    order = Order.objects.select_for_update().get(pk=order.pk)
    if order.status != Order.Status.PAID:
        raise InvalidState(f"Order {order.pk} is {order.status} and cannot be {verb}.")
    busy = saga.active_for(sagas.subject(order.pk))
    if busy is not None:
        raise InvalidState(f"Order {order.pk} is busy: its {busy.kind} saga is {busy.state}.")
    return order


def _start_order_saga(order: Order, verb: str, definition: saga.SagaDefinition, **more: str) -> int:
    """Lock a PAID order and start ``definition`` on it (409 when it is not PAID or busy)."""
    kind = definition.kind
    with transaction.atomic():
        order = _locked_paid_order(order, verb)
        row, _ = saga.start(
            definition,
            key=sagas.saga_key(kind, order.pk),
            subject=sagas.subject(order.pk),
            payload={"order_id": order.pk, **more},
        )
        return row.pk


def _drive_to_outcome(order_id: int, saga_id: int) -> Outcome:
    row = saga.drive(saga_id, wait_s=_wait_seconds())
    order = Order.objects.get(pk=order_id)
    if row.state == saga.SagaState.COMPENSATED.value:
        raise InvalidState(row.last_error or f"Order {order_id}: {row.kind} was refused.")
    return Outcome(order, pending=row.state != saga.SagaState.COMPLETED.value)


def cancel_order(order: Order) -> Outcome:
    """Cancel a paid order: release its stock and refund its payment (409 otherwise)."""
    with ports.calling(*CALLED_CONTEXTS):
        if not _saga_needed():
            return Outcome(_cancel_in_one_transaction(order))
        saga_id = _start_order_saga(order, "cancelled", sagas.CANCEL_ORDER)
    return _drive_to_outcome(order.pk, saga_id)


def _cancel_in_one_transaction(order: Order) -> Order:
    with transaction.atomic():
        order = _locked_paid_order(order, "cancelled")
        inventory.release(order.pk)
        payments.refund_order(order)
        order.status = Order.Status.CANCELLED
        order.save(update_fields=["status", "updated_at"])
        return order


def tracking_number(carrier: str) -> str:
    """A new tracking number for ``carrier``."""
    return f"{carrier[:3].upper()}{uuid.uuid4().hex[:16].upper()}"


def ship_order(order: Order, carrier: str) -> tuple[Shipment | None, Outcome]:
    """Hand a paid order to ``carrier``: its stock leaves, the order becomes SHIPPED.

    Returns the shipment (None while its saga is still running) and the outcome.
    """
    with ports.calling(inventory.CONTEXT):
        if not ports.remote(inventory.CONTEXT):
            shipment = _ship_in_one_transaction(order, carrier)
            return shipment, Outcome(shipment.order)
        saga_id = _start_order_saga(
            order, "shipped", sagas.SHIP_ORDER, carrier=carrier, tracking=tracking_number(carrier)
        )
    outcome = _drive_to_outcome(order.pk, saga_id)
    return Shipment.objects.filter(order_id=order.pk).first(), outcome


def _ship_in_one_transaction(order: Order, carrier: str) -> Shipment:
    with transaction.atomic():
        order = _locked_paid_order(order, "shipped")
        inventory.consume(order.pk)
        order.status = Order.Status.SHIPPED
        order.save(update_fields=["status", "updated_at"])
        return Shipment.objects.create(
            order=order, carrier=carrier, tracking_number=tracking_number(carrier)
        )
