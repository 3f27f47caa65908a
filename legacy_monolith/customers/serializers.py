"""Customer representations and the auth payloads."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model, password_validation
from django.db import transaction
from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from legacy_monolith.customers.models import Customer

User = get_user_model()

PROFILE_FIELDS = [
    "email",
    "first_name",
    "last_name",
    "phone",
    "address_line",
    "city",
    "postal_code",
    "country",
]


class CustomerSerializer(serializers.ModelSerializer):
    """``{"id", "username", "email", "first_name", ..., "created_at", "updated_at"}``."""

    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Customer
        fields = ["id", "username", *PROFILE_FIELDS, "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]


class SignUpSerializer(CustomerSerializer):
    """``POST /customers/``: a new user account and its customer profile."""

    username = serializers.CharField(
        source="user.username",
        max_length=150,
        validators=[UniqueValidator(queryset=User.objects.all(), message="Username taken.")],
    )
    password = serializers.CharField(write_only=True, min_length=8, max_length=128)

    class Meta(CustomerSerializer.Meta):
        fields = [*CustomerSerializer.Meta.fields, "password"]

    def validate_password(self, value: str) -> str:
        password_validation.validate_password(value)
        return value

    def create(self, validated_data: dict[str, Any]) -> Customer:
        user_data = validated_data.pop("user")
        password = validated_data.pop("password")
        with transaction.atomic():
            user = User.objects.create_user(
                username=user_data["username"],
                password=password,
                email=validated_data.get("email", ""),
                first_name=validated_data.get("first_name", ""),
                last_name=validated_data.get("last_name", ""),
            )
            return Customer.objects.create(user=user, **validated_data)


class WhoAmISerializer(serializers.Serializer):
    """``{"id", "username"}`` of the token's user."""

    id = serializers.IntegerField()
    username = serializers.CharField()


class TokenSerializer(serializers.Serializer):
    """``{"token"}``."""

    token = serializers.CharField()
