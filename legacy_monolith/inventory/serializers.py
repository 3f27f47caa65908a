"""Inventory representations (the HTTP contract the inventory service reproduces)."""

from rest_framework import serializers

from legacy_monolith.catalog.models import Product
from legacy_monolith.core.fields import INT32_MAX, INT64_MAX, StrictPrimaryKeyRelatedField
from legacy_monolith.inventory.models import Reservation, StockItem, Warehouse


class WarehouseSerializer(serializers.ModelSerializer):
    """``{"id", "code", "name"}``."""

    class Meta:
        model = Warehouse
        fields = ["id", "code", "name"]


class StockItemSerializer(serializers.ModelSerializer):
    """``{"id", "product", "warehouse", "quantity", "reserved", "available", "updated_at"}``."""

    available = serializers.IntegerField(read_only=True)
    quantity = serializers.IntegerField(min_value=0, max_value=INT32_MAX)

    class Meta:
        model = StockItem
        fields = ["id", "product", "warehouse", "quantity", "reserved", "available", "updated_at"]
        read_only_fields = ["reserved", "updated_at"]


class StockAdjustSerializer(serializers.Serializer):
    """``PATCH /stock/{id}/`` body: ``{"quantity": n}`` (the new on-hand quantity)."""

    quantity = serializers.IntegerField(min_value=0, max_value=INT32_MAX)


class ReserveLineSerializer(serializers.Serializer):
    """One line of a reservation request: ``{"product": id, "quantity": n}``."""

    product = StrictPrimaryKeyRelatedField(queryset=Product.objects.all())
    quantity = serializers.IntegerField(min_value=1, max_value=INT32_MAX)


class ReserveSerializer(serializers.Serializer):
    """``POST /stock/reserve/`` body: ``{"order_id": int, "lines": [...]}``."""

    order_id = serializers.IntegerField(min_value=1, max_value=INT64_MAX)
    lines = ReserveLineSerializer(many=True, allow_empty=False)


class ReleaseSerializer(serializers.Serializer):
    """``POST /stock/release/`` body: ``{"order_id": int}``."""

    order_id = serializers.IntegerField(min_value=1, max_value=INT64_MAX)


class ConsumeSerializer(ReleaseSerializer):
    """``POST /stock/consume/`` body: ``{"order_id": int}``."""


class ReservationSerializer(serializers.ModelSerializer):
    """``{"id", "stock_item", "product", "warehouse", "quantity", "released"}``."""

    product = serializers.IntegerField(source="stock_item.product_id", read_only=True)
    warehouse = serializers.IntegerField(source="stock_item.warehouse_id", read_only=True)

    class Meta:
        model = Reservation
        fields = ["id", "stock_item", "product", "warehouse", "quantity", "released"]
