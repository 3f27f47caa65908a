"""The inventory port: how other contexts' code holds, gives back and ships stock.

Callers hold ``ports.calling("inventory")`` around the call (and around their
transaction, for the local side). In ``shared`` and ``dual_write`` it runs
:mod:`legacy_monolith.inventory.services` in the caller's transaction; in ``split`` it
calls the inventory service's API, the source of truth. Every operation is idempotent
by the order id, on both sides: a retried reserve never reserves twice.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def release(order_id: int, *, key: str = "") -> None:
    """Give back the order's held units; an order with nothing reserved has nothing to do."""
    try:
        if not ports.remote(CONTEXT):
            services.release(order_id)
            return
        body = {"order_id": order_id}
        ports.client(CONTEXT).request("POST", "/api/v1/stock/release/", json=body, request_id=key)
    except NotFound:
        pass
    except ports.RemoteRefused as exc:
        if exc.status_code != 404:
            raise


def consume(order_id: int, *, key: str = "") -> None:
    """Ship the order's held units: they leave on-hand and reserved together.

    An order without reservations cannot be shipped (:class:`InvalidState`).
    """
    try:
        if not ports.remote(CONTEXT):
            services.fulfil(order_id)
            return
        body = {"order_id": order_id}
        ports.client(CONTEXT).request("POST", "/api/v1/stock/consume/", json=body, request_id=key)
    except NotFound as exc:
        raise InvalidState(f"Order {order_id} has no stock reserved to ship.") from exc
    except ports.RemoteRefused as exc:
        if exc.status_code == 404:
            raise InvalidState(f"Order {order_id} has no stock reserved to ship.") from exc
        raise
