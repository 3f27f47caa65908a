"""Shipment endpoints: staff ship paid orders and record deliveries; customers track theirs."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from legacy_monolith.customers.permissions import IsStaffForWrites
from legacy_monolith.orders.serializers import OrderSerializer
from legacy_monolith.shipping import services
from legacy_monolith.shipping.models import Shipment
from legacy_monolith.shipping.serializers import ShipmentSerializer, ShipOrderSerializer


class ShipmentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """``/api/v1/shipments/``: list/retrieve (own or staff), create and deliver (staff)."""

    serializer_class = ShipmentSerializer
    permission_classes = [IsStaffForWrites]
    filterset_fields = ["order", "status", "carrier"]
    ordering_fields = ["id", "shipped_at"]
    ordering = ["id"]

    def get_queryset(self) -> QuerySet[Shipment]:
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return Shipment.objects.none()
        user = self.request.user
        queryset = Shipment.objects.all()
        return queryset if user.is_staff else queryset.filter(order__customer__user=user)

    @extend_schema(
        request=ShipOrderSerializer, responses={201: ShipmentSerializer, 202: OrderSerializer}
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Ship a paid order (409 ``invalid_state`` otherwise); 202 with the order while a
        shipping saga (inventory split) is still running."""
        body = ShipOrderSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        shipment, outcome = services.ship(
            body.validated_data["order"], body.validated_data["carrier"]
        )
        if shipment is None:  # the shipping saga is still running: see the order
            return Response(
                OrderSerializer(outcome.order).data,
                status=status.HTTP_202_ACCEPTED,
                headers={"Location": f"/api/v1/orders/{outcome.order.pk}/"},
            )
        return Response(ShipmentSerializer(shipment).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=ShipmentSerializer)
    @action(detail=True, methods=["post"])
    def deliver(self, request: Request, pk: str | None = None) -> Response:
        """Record that the parcel arrived."""
        shipment = services.deliver(self.get_object())
        return Response(ShipmentSerializer(shipment).data)
