"""The order sagas: placing, cancelling and shipping an order once a context it calls is split.

While inventory and payments both live in the monolith (shared, dual_write) an order
is one database transaction (:mod:`legacy_monolith.orders.services`). When either is
split, its tables are no longer the truth and the order becomes an orchestrated saga
(:mod:`dualwrite.django_app.saga`), persisted in ``strangler_saga`` next to the order:

    place_order   open (undo: cancel the order) -> reserve (undo: release) ->
                  charge (undo: refund) -> confirm (order PAID)
    cancel_order  release -> refund -> close (order CANCELLED)      never undone
    ship_order    consume -> ship (shipment, order SHIPPED)         never undone

Each step is idempotent by the order id, on the local and the remote side, so a step
retried after a timeout or a crash never reserves, charges or ships twice. No stock:
the saga compensates with ``insufficient_stock``; a declined card: ``payment_failed``.
"""

from __future__ import annotations

from dualwrite.django_app.saga import SagaDefinition, SagaRun, Step, StepFailed, register
from legacy_monolith.core.exceptions import InsufficientStock, InvalidState, PaymentFailed
from legacy_monolith.inventory import port as inventory
from legacy_monolith.inventory.services import StockRequest
from legacy_monolith.orders.models import Order
from legacy_monolith.payments import port as payments
from legacy_monolith.shipping.models import Shipment

PLACE = "place_order"
CANCEL = "cancel_order"
SHIP = "ship_order"


def subject(order_id: int) -> str:
    """What the order's sagas are about (one active saga per order at a time)."""
    return f"order:{order_id}"


def saga_key(kind: str, order_id: int) -> str:
    """The saga's idempotency key: one placement, one cancellation, one shipping per order."""
    return f"{kind}:{order_id}"


def _order(run: SagaRun) -> Order:
    return Order.objects.select_for_update().get(pk=run.payload["order_id"])


def _set_status(run: SagaRun, status: str, *, when: tuple[str, ...]) -> None:
    order = _order(run)
    if order.status in when:
        order.status = status
        order.save(update_fields=["status", "updated_at"])


# -- placing ----------------------------------------------------------------------------


def _open(run: SagaRun) -> None:
    """The order row was written (PENDING) with the saga; nothing more to do."""


def _cancel_pending(run: SagaRun) -> None:
    _set_status(run, Order.Status.CANCELLED, when=(Order.Status.PENDING,))


def _reserve(run: SagaRun) -> None:
    order = Order.objects.get(pk=run.payload["order_id"])
    lines = [StockRequest(line.product_id, line.quantity) for line in order.lines.all()]
    try:
        inventory.reserve(order.pk, lines, key=run.step_key("reserve"))
    except InsufficientStock as exc:
        raise StepFailed("insufficient_stock", str(exc.detail)) from exc
    except InvalidState as exc:
        raise StepFailed("invalid_state", str(exc.detail)) from exc


def _release(run: SagaRun) -> None:
    inventory.release(run.payload["order_id"], key=run.step_key("release"))


def _charge(run: SagaRun) -> None:
    order = Order.objects.get(pk=run.payload["order_id"])
    try:
        payments.charge(order, run.payload.get("payment_token", ""), key=run.step_key("charge"))
    except PaymentFailed as exc:
        raise StepFailed("payment_failed", str(exc.detail)) from exc
    except InvalidState as exc:
        raise StepFailed("invalid_state", str(exc.detail)) from exc
    run.payload.pop("payment_token", None)  # not kept once the card was charged


def _refund(run: SagaRun) -> None:
    order = Order.objects.get(pk=run.payload["order_id"])
    payments.refund_order(order, key=run.step_key("refund"))


def _confirm(run: SagaRun) -> None:
    _set_status(run, Order.Status.PAID, when=(Order.Status.PENDING,))


PLACE_ORDER = register(
    SagaDefinition(
        PLACE,
        (
            Step("open", _open, compensate=_cancel_pending),
            Step("reserve", _reserve, compensate=_release, calls=(inventory.CONTEXT,)),
            Step("charge", _charge, compensate=_refund, calls=(payments.CONTEXT,)),
            Step("confirm", _confirm),
        ),
        abortable=True,
    )
)


# -- cancelling and shipping --------------------------------------------------------------


def _close(run: SagaRun) -> None:
    _set_status(run, Order.Status.CANCELLED, when=(Order.Status.PAID,))


CANCEL_ORDER = register(
    SagaDefinition(
        CANCEL,
        (
            Step("release", _release, calls=(inventory.CONTEXT,)),
            Step("refund", _refund, calls=(payments.CONTEXT,)),
            Step("close", _close),
        ),
        abortable=False,
    )
)


def _consume(run: SagaRun) -> None:
    try:
        inventory.consume(run.payload["order_id"], key=run.step_key("consume"))
    except InvalidState as exc:
        raise StepFailed("invalid_state", str(exc.detail)) from exc


def _ship(run: SagaRun) -> None:
    order = _order(run)
    if order.status != Order.Status.PAID:
        return  # shipped by an earlier run of this step
    Shipment.objects.create(
        order=order, carrier=run.payload["carrier"], tracking_number=run.payload["tracking"]
    )
    order.status = Order.Status.SHIPPED
    order.save(update_fields=["status", "updated_at"])


SHIP_ORDER = register(
    SagaDefinition(
        SHIP,
        (Step("consume", _consume, calls=(inventory.CONTEXT,)), Step("ship", _ship)),
        abortable=False,
    )
)
