from django.apps import AppConfig


class OrdersConfig(AppConfig):
    """Orders and their lines (``orders_order``, ``orders_orderline``)."""

    name = "legacy_monolith.orders"
    label = "orders"
