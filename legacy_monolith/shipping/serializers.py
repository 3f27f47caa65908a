from rest_framework import serializers

from legacy_monolith.orders.models import Order
from legacy_monolith.shipping.models import Shipment


class ShipmentSerializer(serializers.ModelSerializer):
    """``{"id", "order", "carrier", "tracking_number", "status", "shipped_at", "delivered_at"}``."""

    class Meta:
        model = Shipment
        fields = [
            "id",
            "order",
            "carrier",
            "tracking_number",
            "status",
            "shipped_at",
            "delivered_at",
        ]
        read_only_fields = ["tracking_number", "status", "shipped_at", "delivered_at"]


class ShipOrderSerializer(serializers.Serializer):
    """``POST /shipments/`` body: ``{"order": id, "carrier": "DHL"}``."""

    order = serializers.PrimaryKeyRelatedField(queryset=Order.objects.all())
    carrier = serializers.CharField(max_length=50)
