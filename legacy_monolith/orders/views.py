"""Order endpoints: place (one transaction across contexts), list, retrieve, cancel."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from legacy_monolith.customers.models import Customer
from legacy_monolith.orders import services
from legacy_monolith.orders.models import Order
from legacy_monolith.orders.serializers import OrderSerializer, PlaceOrderSerializer


class OrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """``/api/v1/orders/``: the caller's orders (staff: everyone's)."""

    serializer_class = OrderSerializer
    permission_classes = [permissions.IsAuthenticated]
    filterset_fields = ["status", "customer"]
    ordering_fields = ["id", "created_at", "total"]
    ordering = ["id"]

    def get_queryset(self) -> QuerySet[Order]:
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return Order.objects.none()
        user = self.request.user
        queryset = Order.objects.prefetch_related("lines")
        return queryset if user.is_staff else queryset.filter(customer__user=user)

    @extend_schema(
        request=PlaceOrderSerializer, responses={201: OrderSerializer, 202: OrderSerializer}
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Place an order: 201, 409 ``insufficient_stock``/``invalid_state``, 402 ``payment_failed``;
        202 PENDING when its saga (a called context is split) outlives the wait."""
        body = PlaceOrderSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        lines = [
            services.OrderRequestLine(line["product"].pk, line["quantity"])
            for line in body.validated_data["lines"]
        ]
        customer = Customer.for_user(request.user)
        outcome = services.place_order(customer, lines, body.validated_data["payment_token"])
        return self._answer(outcome, status.HTTP_201_CREATED)

    def _answer(self, outcome: services.Outcome, done: int) -> Response:
        """``done`` with the order, or 202 with it while its saga still runs."""
        order = self.get_queryset().get(pk=outcome.order.pk)
        if not outcome.pending:
            return Response(OrderSerializer(order).data, status=done)
        return Response(
            OrderSerializer(order).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": f"/api/v1/orders/{order.pk}/"},
        )

    @extend_schema(request=None, responses={200: OrderSerializer, 202: OrderSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Cancel a paid order: stock released, payment refunded (409 ``invalid_state``)."""
        return self._answer(services.cancel_order(self.get_object()), status.HTTP_200_OK)
