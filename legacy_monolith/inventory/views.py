"""Inventory endpoints: warehouses, stock levels, reserve, release and consume."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from legacy_monolith.inventory import services
from legacy_monolith.inventory.models import Reservation, StockItem, Warehouse
from legacy_monolith.inventory.serializers import (
    ConsumeSerializer,
    ReleaseSerializer,
    ReservationSerializer,
    ReserveSerializer,
    StockAdjustSerializer,
    StockItemSerializer,
    WarehouseSerializer,
)

ReservationsResponse = inline_serializer(
    "ReservationsResponse",
    {"order_id": serializers.IntegerField(), "reservations": ReservationSerializer(many=True)},
)


def reservations_body(order_id: int, reservations: list[Reservation]) -> dict[str, Any]:
    """``{"order_id", "reservations": [...]}``."""
    return {
        "order_id": order_id,
        "reservations": ReservationSerializer(reservations, many=True).data,
    }


class WarehouseViewSet(viewsets.ModelViewSet):
    """``/api/v1/warehouses/``."""

    queryset = Warehouse.objects.all()
    serializer_class = WarehouseSerializer
    ordering_fields = ["id", "code", "name"]
    ordering = ["id"]


class StockItemViewSet(viewsets.ModelViewSet):
    """``/api/v1/stock/``: filter by product, warehouse; PATCH sets the on-hand quantity."""

    queryset = StockItem.objects.all()
    serializer_class = StockItemSerializer
    filterset_fields = ["product", "warehouse"]
    ordering_fields = ["id", "quantity", "reserved", "updated_at"]
    ordering = ["id"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    @extend_schema(request=StockAdjustSerializer, responses=StockItemSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        item = self.get_object()
        body = StockAdjustSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        item = services.set_quantity(item.pk, body.validated_data["quantity"])
        return Response(StockItemSerializer(item).data)

    @extend_schema(
        request=ReserveSerializer, responses={201: ReservationsResponse, 200: ReservationsResponse}
    )
    @action(detail=False, methods=["post"])
    def reserve(self, request: Request) -> Response:
        """Hold stock for an order: all lines or none (409 ``insufficient_stock``).

        The order id is the idempotency key: a retry with the same lines answers 200 with
        the existing reservations, other lines 409 ``reservation_exists``.
        """
        body = ReserveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        order_id = body.validated_data["order_id"]
        lines = [
            services.StockRequest(product_id=line["product"].pk, quantity=line["quantity"])
            for line in body.validated_data["lines"]
        ]
        reservations, created = services.reserve(order_id, lines)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(reservations_body(order_id, reservations), status=code)

    @extend_schema(request=ReleaseSerializer, responses=ReservationsResponse)
    @action(detail=False, methods=["post"])
    def release(self, request: Request) -> Response:
        """Give back an order's held units (404 ``not_found`` if it has no reservations)."""
        body = ReleaseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        order_id = body.validated_data["order_id"]
        return Response(reservations_body(order_id, services.release(order_id)))

    @extend_schema(request=ConsumeSerializer, responses=ReservationsResponse)
    @action(detail=False, methods=["post"])
    def consume(self, request: Request) -> Response:
        """Ship an order's held units (404 ``not_found`` if it has no reservations)."""
        body = ConsumeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        order_id = body.validated_data["order_id"]
        return Response(reservations_body(order_id, services.fulfil(order_id)))
