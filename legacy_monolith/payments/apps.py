from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    """Payments of orders (``payments_payment``)."""

    name = "legacy_monolith.payments"
    label = "payments"
