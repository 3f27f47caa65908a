"""Shipment of an order (``shipping_shipment``)."""

from django.db import models


class Shipment(models.Model):
    """A paid order handed to a carrier; delivering it closes the order's journey."""

    class Status(models.TextChoices):
        SHIPPED = "shipped"
        DELIVERED = "delivered"

    order = models.OneToOneField("orders.Order", on_delete=models.PROTECT, related_name="shipment")
    carrier = models.CharField(max_length=50)
    tracking_number = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SHIPPED)
    shipped_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.carrier} {self.tracking_number} ({self.status})"
