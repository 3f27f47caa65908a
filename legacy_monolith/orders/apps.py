from django.apps import AppConfig


class OrdersConfig(AppConfig):
    """Orders and their lines (``orders_order``, ``orders_orderline``)."""

    name = "legacy_monolith.orders"
    label = "orders"

    def ready(self) -> None:
        # Registers the order sagas and installs the Celery scheduler of their retries.
        from dualwrite.django_app import saga_tasks  # noqa: F401
        from legacy_monolith.orders import saga  # noqa: F401
