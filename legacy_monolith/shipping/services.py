"""Shipping paid orders: consumes their stock reservations in the same transaction."""

from __future__ import annotations

import uuid

from django.db import transaction
from django.utils import timezone

from legacy_monolith.core.exceptions import InvalidState
from legacy_monolith.inventory import services as inventory
from legacy_monolith.orders.models import Order
from legacy_monolith.shipping.models import Shipment


def ship(order: Order, carrier: str) -> Shipment:
    """Hand a paid order to ``carrier``: reserved units leave stock, order becomes shipped."""
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        if order.status != Order.Status.PAID:
            raise InvalidState(f"Order {order.pk} is {order.status} and cannot be shipped.")
        inventory.fulfil(order.pk)
        order.status = Order.Status.SHIPPED
        order.save(update_fields=["status", "updated_at"])
        tracking = f"{carrier[:3].upper()}{uuid.uuid4().hex[:16].upper()}"
        return Shipment.objects.create(order=order, carrier=carrier, tracking_number=tracking)


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
