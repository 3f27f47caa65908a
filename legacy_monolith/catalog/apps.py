from django.apps import AppConfig


class CatalogConfig(AppConfig):
    """Categories and products (tables ``catalog_category``, ``catalog_product``)."""

    name = "legacy_monolith.catalog"
    label = "catalog"
