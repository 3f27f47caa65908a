"""Catalog representations (the HTTP contract the catalog service reproduces)."""

from rest_framework import serializers

from legacy_monolith.catalog.models import Category, Product
from legacy_monolith.core.fields import StrictPrimaryKeyRelatedField


class CategorySerializer(serializers.ModelSerializer):
    """``{"id", "name", "slug", "description"}``."""

    class Meta:
        model = Category
        fields = ["id", "name", "slug", "description"]


class ProductSerializer(serializers.ModelSerializer):
    """``{"id", "sku", "name", "description", "price", "is_active", "category", ...}``."""

    serializer_related_field = StrictPrimaryKeyRelatedField

    class Meta:
        model = Product
        fields = [
            "id",
            "sku",
            "name",
            "description",
            "price",
            "is_active",
            "category",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
