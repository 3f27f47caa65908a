"""Customer endpoints (sign-up, profiles) and the auth endpoints (token, whoami)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from legacy_monolith.customers.models import Customer
from legacy_monolith.customers.permissions import CustomerAccess
from legacy_monolith.customers.serializers import (
    CustomerSerializer,
    SignUpSerializer,
    TokenSerializer,
    WhoAmISerializer,
)


class CustomerViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """``/api/v1/customers/``: sign up (anonymous), list (staff), own profile at ``me/``."""

    serializer_class = CustomerSerializer
    permission_classes = [CustomerAccess]
    ordering_fields = ["id", "created_at", "last_name"]
    ordering = ["id"]
    filterset_fields = ["email", "country"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self) -> QuerySet[Customer]:
        queryset = Customer.objects.select_related("user")
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return Customer.objects.none()
        user = self.request.user
        if user.is_authenticated and not user.is_staff:
            queryset = queryset.filter(user=user)
        return queryset

    def get_serializer_class(self) -> type[CustomerSerializer]:
        return SignUpSerializer if self.action == "create" else CustomerSerializer

    @action(detail=False, methods=["get", "patch"])
    def me(self, request: Request) -> Response:
        """The caller's own customer profile (created on first use)."""
        customer = Customer.for_user(request.user)
        if request.method == "PATCH":
            serializer = CustomerSerializer(customer, data=request.data, partial=True)
            serializer.is_valid(raise_exception=True)
            serializer.save()
        return Response(CustomerSerializer(customer).data)


class ObtainTokenView(APIView):
    """``POST /api/v1/auth/token/`` ``{"username", "password"}`` -> ``{"token"}``."""

    permission_classes = [permissions.AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(request=AuthTokenSerializer, responses=TokenSerializer)
    def post(self, request: Request) -> Response:
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key})


class WhoAmIView(APIView):
    """``GET /api/v1/auth/whoami/`` -> ``{"id", "username"}`` (the proxy validates tokens here)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=WhoAmISerializer)
    def get(self, request: Request) -> Response:
        return Response({"id": request.user.pk, "username": request.user.get_username()})
