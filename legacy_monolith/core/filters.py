"""Ordering with a deterministic tiebreak, so every backend pages through rows alike; a
filter on an id column that parses digits only."""

from __future__ import annotations

import re
from typing import Any

import django_filters
from django import forms
from rest_framework import filters

INT64 = (-(2**63), 2**63 - 1)
_WHOLE = re.compile(r"^[-+]?[0-9]{1,30}\Z")


class IdField(forms.Field):
    """A whole number in ASCII digits (no exponent, no fraction, never through Decimal)."""

    default_error_messages = {"invalid": "Enter a whole number."}

    def to_python(self, value: Any) -> int | None:
        text = str(value or "").strip()
        if not text:
            return None
        if not _WHOLE.match(text):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return int(text)


class IdFilter(django_filters.NumberFilter):
    """``?category=<id>``: digits only (400 ``Enter a whole number.`` otherwise); an id past
    64 bits matches no row instead of reaching the database (a 500 before)."""

    field_class = IdField

    def filter(self, qs: Any, value: Any) -> Any:
        if value is not None and not INT64[0] <= value <= INT64[1]:
            return qs.none()
        return super().filter(qs, value)


class OrderingFilter(filters.OrderingFilter):
    """``?ordering=price,-name``; ties are always broken by ``id`` ascending."""

    def get_ordering(self, request: Any, queryset: Any, view: Any) -> list[str]:
        ordering = list(super().get_ordering(request, queryset, view) or [])
        if not any(term.lstrip("-") in {"id", "pk"} for term in ordering):
            ordering.append("id")
        return ordering
