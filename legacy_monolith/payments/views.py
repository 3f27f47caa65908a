"""Payment endpoints (read-only: payments are made by placing orders)."""

from django.db.models import QuerySet
from rest_framework import permissions, viewsets

from legacy_monolith.payments.models import Payment
from legacy_monolith.payments.serializers import PaymentSerializer


class PaymentViewSet(viewsets.ReadOnlyModelViewSet):
    """``/api/v1/payments/``: the caller's payments (staff: everyone's)."""

    serializer_class = PaymentSerializer
    permission_classes = [permissions.IsAuthenticated]
    filterset_fields = ["order", "status"]
    ordering_fields = ["id", "created_at", "amount"]
    ordering = ["id"]

    def get_queryset(self) -> QuerySet[Payment]:
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return Payment.objects.none()
        user = self.request.user
        queryset = Payment.objects.all()
        return queryset if user.is_staff else queryset.filter(order__customer__user=user)
