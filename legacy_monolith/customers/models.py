"""Customer profile of a Django user (``customers_customer``)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Customer(models.Model):
    """A shop customer: the person behind a user account, with a shipping address."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="customer"
    )
    email = models.EmailField(blank=True, default="", db_index=True)
    first_name = models.CharField(max_length=100, blank=True, default="")
    last_name = models.CharField(max_length=100, blank=True, default="")
    phone = models.CharField(max_length=32, blank=True, default="")
    address_line = models.CharField(max_length=200, blank=True, default="")
    city = models.CharField(max_length=100, blank=True, default="")
    postal_code = models.CharField(max_length=20, blank=True, default="")
    country = models.CharField(max_length=2, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name} <{self.email}>".strip()

    @classmethod
    def for_user(cls, user: models.Model) -> Customer:
        """The user's customer profile, created on first use (e.g. for staff accounts)."""
        customer, _ = cls.objects.get_or_create(
            user=user,
            defaults={
                "email": getattr(user, "email", ""),
                "first_name": getattr(user, "first_name", ""),
                "last_name": getattr(user, "last_name", ""),
            },
        )
        return customer
