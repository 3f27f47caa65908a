"""List query parameters with the monolith's semantics (DRF ``OrderingFilter``, django-filter).

- ``?ordering=price,-name``: unknown terms are dropped; none valid means the default.
- number filters: empty means no filter, non-numbers are a 400 ``Enter a number.``.
- boolean filters: ``true``/``True``/``false``/``False`` filter; anything else is ignored.
- text filters: exact match; empty means no filter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request

from extracted_services.common.errors import NotFound, ValidationFailed
from extracted_services.common.pagination import Page
from extracted_services.common.store import Query, TableView, count, fetch
from migration_plans.core.mapping import Row

_BOOLEANS = {"True": True, "true": True, "2": True, "False": False, "false": False, "3": False}


def ordering(
    request: Request, allowed: Mapping[str, str], default: tuple[str, ...]
) -> tuple[str, ...]:
    """Service-column ordering terms from ``?ordering=`` (``allowed``: legacy name -> column)."""
    raw = request.query_params.get("ordering")
    terms: list[str] = []
    for term in (raw or "").split(","):
        term = term.strip()
        descending = term.startswith("-")
        name = term[1:] if descending else term
        if name in allowed:
            terms.append(("-" if descending else "") + allowed[name])
    return tuple(terms) if terms else default


class FilterErrors(dict[str, list[str]]):
    """Filter validation errors, keyed by query parameter."""


def number_filter(request: Request, name: str, errors: FilterErrors) -> int | None:
    """django-filter's ``NumberFilter`` on an integer column."""
    raw = (request.query_params.get(name) or "").strip()
    if not raw:
        return None
    try:
        number = Decimal(raw)
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        errors[name] = ["Enter a number."]
        return None
    return int(number)


def boolean_filter(request: Request, name: str) -> bool | None:
    """django-filter's ``BooleanFilter`` (``NullBooleanSelect`` widget)."""
    return _BOOLEANS.get(request.query_params.get(name, ""))


def text_filter(request: Request, name: str) -> str | None:
    """django-filter's ``CharFilter`` (exact)."""
    return request.query_params.get(name) or None


def page_of(
    request: Request,
    session: Session,
    view: TableView,
    query: Query,
    render: Callable[[Row], dict[str, Any]],
) -> dict[str, Any]:
    """One page of ``view`` under ``query``, in the pagination envelope."""
    page = Page.from_request(request, count(session, view, query))
    rows = fetch(session, view, query, offset=page.offset, limit=page.size)
    return page.envelope([render(row) for row in rows])


def parse_key(raw: str) -> int:
    """A path id as Django looks it up: not an integer means 404."""
    try:
        return int(raw)
    except ValueError:
        raise NotFound() from None


def raise_for(errors: Mapping[str, list[str]]) -> None:
    """400 ``invalid`` with ``errors`` as the fields, if there are any."""
    if errors:
        raise ValidationFailed(dict(errors))
