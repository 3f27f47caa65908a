"""CRUD endpoints of every table (list with pagination, retrieve, create, update, delete),
the token endpoints the proxy checks identities with, and ``/healthz``."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from rest_framework import permissions, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tests.library.monolith.lending import serializers
from tests.library.monolith.lending.models import Book, Branch, Copy, Loan, Member


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness."""
    return JsonResponse({"status": "ok", "service": "library"})


class ObtainToken(APIView):
    """``POST /api/v1/auth/token/`` ``{"username", "password"}`` -> ``{"token"}``."""

    permission_classes = [permissions.AllowAny]

    def post(self, request: Request) -> Response:
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key})


class WhoAmI(APIView):
    """``GET /api/v1/auth/whoami/`` -> ``{"id", "username"}`` (the proxy checks tokens here)."""

    permission_classes = [permissions.IsAuthenticated]

    def get(self, request: Request) -> Response:
        return Response({"id": request.user.pk, "username": request.user.get_username()})


class BranchViewSet(viewsets.ModelViewSet[Branch]):
    queryset = Branch.objects.all()
    ordering_fields: list[str] = ["code", "name", "city"]
    serializer_class = serializers.BranchSerializer
    lookup_value_regex = "[A-Za-z0-9_-]+"


class BookViewSet(viewsets.ModelViewSet[Book]):
    queryset = Book.objects.all()
    ordering_fields: list[str] = ["isbn", "title", "published_year"]
    serializer_class = serializers.BookSerializer
    lookup_value_regex = "[0-9X]+"


class CopyViewSet(viewsets.ModelViewSet[Copy]):
    """Copies by their composite key: ``/copies/{branch}/{book}/{copy_no}/``; ``?book=`` filters."""

    ordering_fields: list[str] = []
    serializer_class = serializers.CopySerializer

    def get_queryset(self) -> QuerySet[Copy]:
        copies = Copy.objects.all()
        book = self.request.query_params.get("book")
        return copies.filter(book_id=book) if book else copies

    def get_object(self) -> Copy:
        kwargs: dict[str, Any] = self.kwargs
        copy = get_object_or_404(
            Copy, branch_id=kwargs["branch"], book_id=kwargs["book"], copy_no=kwargs["copy_no"]
        )
        self.check_object_permissions(self.request, copy)
        return copy


class MemberViewSet(viewsets.ModelViewSet[Member]):
    queryset = Member.objects.all()
    ordering_fields: list[str] = ["id", "name"]
    serializer_class = serializers.MemberSerializer


class LoanViewSet(viewsets.ModelViewSet[Loan]):
    """Loans; ``?member=`` and ``?status=`` filter."""

    ordering_fields: list[str] = ["due_at"]
    serializer_class = serializers.LoanSerializer

    def get_queryset(self) -> QuerySet[Loan]:
        loans = Loan.objects.all()
        for name, column in (("member", "member_id"), ("status", "status")):
            value = self.request.query_params.get(name)
            if value:
                loans = loans.filter(**{column: value})
        return loans
