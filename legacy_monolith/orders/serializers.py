"""Order representations and the order placement payload."""

from rest_framework import serializers

from legacy_monolith.catalog.models import Product
from legacy_monolith.orders.models import Order, OrderLine


class OrderLineSerializer(serializers.ModelSerializer):
    """``{"id", "product", "quantity", "unit_price"}``."""

    class Meta:
        model = OrderLine
        fields = ["id", "product", "quantity", "unit_price"]


class OrderSerializer(serializers.ModelSerializer):
    """``{"id", "customer", "status", "total", "currency", "lines", ...}``."""

    lines = OrderLineSerializer(many=True, read_only=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "customer",
            "status",
            "total",
            "currency",
            "lines",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class PlaceOrderLineSerializer(serializers.Serializer):
    """One requested line: ``{"product": id, "quantity": n}``."""

    product = serializers.PrimaryKeyRelatedField(queryset=Product.objects.all())
    quantity = serializers.IntegerField(min_value=1, max_value=1000)


class PlaceOrderSerializer(serializers.Serializer):
    """``POST /orders/`` body: ``{"lines": [...], "payment_token": "tok_visa"}``."""

    lines = PlaceOrderLineSerializer(many=True, allow_empty=False)
    payment_token = serializers.CharField(max_length=64)

    def validate_lines(self, lines):
        products = [line["product"].pk for line in lines]
        if len(products) != len(set(products)):
            raise serializers.ValidationError("Each product may appear in one line only.")
        return lines
