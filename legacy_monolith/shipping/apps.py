from django.apps import AppConfig


class ShippingConfig(AppConfig):
    """Shipments (``shipping_shipment``)."""

    name = "legacy_monolith.shipping"
    label = "shipping"
