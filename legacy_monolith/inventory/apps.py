from django.apps import AppConfig


class InventoryConfig(AppConfig):
    """Warehouses, stock items and reservations (``inventory_*`` tables)."""

    name = "legacy_monolith.inventory"
    label = "inventory"
