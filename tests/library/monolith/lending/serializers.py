"""The library's JSON: what clients send and get back (the contract the service keeps)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from tests.library.monolith.lending.models import Book, Branch, Copy, Loan, Member


class KeptKey:
    """The key fields are set on create and ignored on update (a row never changes key)."""

    key_fields: tuple[str, ...] = ()

    def update(self, instance: Any, validated_data: dict[str, Any]) -> Any:
        for column in self.key_fields:
            validated_data.pop(column, None)
        return super().update(instance, validated_data)  # type: ignore[misc]


class BranchSerializer(KeptKey, serializers.ModelSerializer[Branch]):
    key_fields = ("code",)

    class Meta:
        model = Branch
        fields = ["code", "name", "city"]


class BookSerializer(KeptKey, serializers.ModelSerializer[Book]):
    key_fields = ("isbn",)

    class Meta:
        model = Book
        fields = ["isbn", "title", "author", "published_year"]


class CopySerializer(KeptKey, serializers.ModelSerializer[Copy]):
    """``branch`` and ``book`` by key; the three together name the copy (set on create only)."""

    key_fields = ("branch", "book", "copy_no")

    class Meta:
        model = Copy
        fields = ["branch", "book", "copy_no", "condition", "shelved_at"]
        validators: list[Any] = []

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is None:
            key = (attrs["branch"], attrs["book"], attrs["copy_no"])
            if Copy.objects.filter(branch=key[0], book=key[1], copy_no=key[2]).exists():
                raise serializers.ValidationError("This copy already exists.")
        return attrs


class MemberSerializer(serializers.ModelSerializer[Member]):
    class Meta:
        model = Member
        fields = ["id", "name", "email", "phone", "address", "joined_at"]


class LoanSerializer(serializers.ModelSerializer[Loan]):
    class Meta:
        model = Loan
        fields = [
            "id",
            "member",
            "book",
            "branch",
            "status",
            "meta",
            "notes",
            "fine",
            "borrowed_at",
            "due_at",
        ]
