"""Ordering with a deterministic tiebreak, so every backend pages through rows alike."""

from __future__ import annotations

from typing import Any

from rest_framework import filters


class OrderingFilter(filters.OrderingFilter):
    """``?ordering=price,-name``; ties are always broken by ``id`` ascending."""

    def get_ordering(self, request: Any, queryset: Any, view: Any) -> list[str]:
        ordering = list(super().get_ordering(request, queryset, view) or [])
        if not any(term.lstrip("-") in {"id", "pk"} for term in ordering):
            ordering.append("id")
        return ordering
