"""Shipping paid orders (their stock reservations are consumed) and recording deliveries."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from legacy_monolith.core.exceptions import InvalidState
from legacy_monolith.orders.models import Order
from legacy_monolith.orders.services import Outcome, ship_order
from legacy_monolith.shipping.models import Shipment


def ship(order: Order, carrier: str) -> tuple[Shipment | None, Outcome]:
    """Hand a paid order to ``carrier``: reserved units leave stock, order becomes shipped.

    One transaction while inventory lives in the monolith, a saga once it is split
    (:func:`legacy_monolith.orders.services.ship_order`); the shipment is None while
    that saga is still running (the API answers 202).
    """
    return ship_order(order, carrier)


def deliver(shipment: Shipment) -> Shipment:
    """Record the delivery of a shipment (409 if it was already delivered)."""
    with transaction.atomic():
        shipment = Shipment.objects.select_for_update().get(pk=shipment.pk)
        if shipment.status != Shipment.Status.SHIPPED:
            raise InvalidState(f"Shipment {shipment.pk} is already {shipment.status}.")
        shipment.status = Shipment.Status.DELIVERED
        shipment.delivered_at = timezone.now()
        shipment.save(update_fields=["status", "delivered_at"])
        return shipment
