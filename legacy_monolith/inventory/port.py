"""The inventory port: how other contexts' code holds, gives back and ships stock.

Callers hold ``ports.calling("inventory")`` around the call (and around their
transaction, for the local side). In ``shared`` and ``dual_write`` it runs
:mod:`legacy_monolith.inventory.services` in the caller's transaction; in ``split`` it
calls the inventory service's API, the source of truth. Every operation is idempotent
by the order id, on both sides: a retried reserve never reserves twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rest_framework.exceptions import NotFound

from dualwrite.django_app import ports
from legacy_monolith.core.exceptions import InsufficientStock, InvalidState
from legacy_monolith.inventory import services

CONTEXT = "inventory"


def reserve(order_id: int, lines: Sequence[services.StockRequest], *, key: str = "") -> None:
    """Hold stock for ``order_id``: all lines or none (:class:`InsufficientStock`)."""
    if not ports.remote(CONTEXT):
        services.reserve(order_id, lines)
        return
    body = {
        "order_id": order_id,
        "lines": [{"product": line.product_id, "quantity": line.quantity} for line in lines],
    }
    try:
        ports.client(CONTEXT).request("POST", "/api/v1/stock/reserve/", json=body, request_id=key)
    except ports.RemoteRefused as exc:
        if exc.code == "insufficient_stock":
            raise InsufficientStock(exc.detail) from exc
        raise InvalidState(f"inventory refused the reservation of order {order_id}: {exc}") from exc


def _settle(action: str, local: Callable[[int], object], order_id: int, key: str) -> bool:
    """Release or consume the order's held units, here or in the service; False when the
    order has no reservations at all (404 on either side)."""
    try:
        if ports.remote(CONTEXT):
            body = {"order_id": order_id}
            path = f"/api/v1/stock/{action}/"
            ports.client(CONTEXT).request("POST", path, json=body, request_id=key)
        else:
            local(order_id)
    except NotFound:
        return False
    except ports.RemoteRefused as exc:
        if exc.status_code != 404:
            raise
        return False
    return True


def release(order_id: int, *, key: str = "") -> None:
    """Give back the order's held units; an order with nothing reserved has nothing to do."""
    _settle("release", services.release, order_id, key)


def consume(order_id: int, *, key: str = "") -> None:
    """Ship the order's held units: they leave on-hand and reserved together.

    An order without reservations cannot be shipped (:class:`InvalidState`).
    """
    if not _settle("consume", services.fulfil, order_id, key):
        raise InvalidState(f"Order {order_id} has no stock reserved to ship.")
