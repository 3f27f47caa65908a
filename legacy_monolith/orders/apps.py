from django.apps import AppConfig


class OrdersConfig(AppConfig):
    """Orders and their lines (``orders_order``, ``orders_orderline``)."""

    name = "legacy_monolith.orders"
    label = "orders"

    def ready(self) -> None:
        # The monolith's Celery app is current in every process (web workers send saga
        # retries); the order sagas are registered and their retries scheduled through it.
        from dualwrite.django_app import saga_tasks  # noqa: F401
        from legacy_monolith import celery_app  # noqa: F401
        from legacy_monolith.orders import saga  # noqa: F401
