from django.apps import AppConfig


class CustomersConfig(AppConfig):
    """Customer profiles linked to Django users."""

    name = "legacy_monolith.customers"
    label = "customers"
