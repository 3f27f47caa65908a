from rest_framework import serializers

from legacy_monolith.payments.models import Payment


class PaymentSerializer(serializers.ModelSerializer):
    """``{"id", "order", "amount", "currency", "status", "provider_reference", ...}``."""

    class Meta:
        model = Payment
        fields = [
            "id",
            "order",
            "amount",
            "currency",
            "status",
            "provider_reference",
            "card_last4",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields
