"""Catalog endpoints: anonymous reads, token-authenticated writes."""

from rest_framework import viewsets

from legacy_monolith.catalog.filters import ProductFilter
from legacy_monolith.catalog.models import Category, Product
from legacy_monolith.catalog.serializers import CategorySerializer, ProductSerializer


class CategoryViewSet(viewsets.ModelViewSet):
    """``/api/v1/categories/``: list, create, retrieve, update, delete."""

    queryset = Category.objects.all()
    serializer_class = CategorySerializer
    ordering_fields = ["id", "name", "slug"]
    ordering = ["id"]


class ProductViewSet(viewsets.ModelViewSet):
    """``/api/v1/products/``: filter by category, is_active, sku; order by price, name, ..."""

    queryset = Product.objects.all()
    serializer_class = ProductSerializer
    filterset_class = ProductFilter
    ordering_fields = ["id", "sku", "name", "price", "created_at", "updated_at"]
    ordering = ["id"]
