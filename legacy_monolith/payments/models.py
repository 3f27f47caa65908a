"""Payment of an order (``payments_payment``)."""

from django.db import models


class Payment(models.Model):
    """A successful charge of an order (failed charges roll back with the order)."""

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded"
        REFUNDED = "refunded"

    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="payments")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SUCCEEDED)
    provider_reference = models.CharField(max_length=64, unique=True)
    card_last4 = models.CharField(max_length=4, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.provider_reference} {self.amount} {self.currency} ({self.status})"
