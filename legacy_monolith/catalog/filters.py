"""Query-string filters of the catalog lists."""

import django_filters

from legacy_monolith.catalog.models import Product
from legacy_monolith.core.filters import IdFilter


class ProductFilter(django_filters.FilterSet):
    """``?category=<id>``, ``?is_active=true|false``, ``?sku=<exact sku>``."""

    category = IdFilter(field_name="category_id")
    is_active = django_filters.BooleanFilter()
    sku = django_filters.CharFilter()

    class Meta:
        model = Product
        fields = ["category", "is_active", "sku"]
