"""List query parameters with the monolith's semantics (DRF ``OrderingFilter``, django-filter).

- ``?ordering=price,-name``: unknown terms are dropped; none valid means the default.
- id filters: empty means no filter, anything but ASCII digits a 400 ``Enter a whole number.``.
- boolean filters: ``true``/``True``/``false``/``False`` filter; anything else is ignored.
- text filters: exact match; empty means no filter.
- path keys: typed by the pair's key (:func:`parse_key_of`): an integer as Django looks it
  up, text as it is, a UUID in any form Django's ``UUIDField`` accepts; anything else 404.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request

from extracted_services.common.errors import NotFound, ValidationFailed
from extracted_services.common.pagination import Page
from extracted_services.common.store import Query, TableView, count, fetch
from extracted_services.common.validation import INT64, unstorable
from migration_plans.core.keys import KeyType
from migration_plans.core.keys import Side as KeySide
from migration_plans.core.mapping import Row, TableMapping

NO_MATCH = INT64[1] + 1
"""A number filter's value no key holds (the query matches no row; never sent to SQL)."""

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


_WHOLE = re.compile(r"^[-+]?[0-9]{1,30}\Z")


def number_filter(request: Request, name: str, errors: FilterErrors) -> int | None:
    """The monolith's ``IdFilter``: a whole number in ASCII digits, never through ``Decimal``.

    Anything else: 400 ``Enter a whole number.``; an id past 64 bits matches no row:
    ``NO_MATCH`` (the caller answers an empty page; the value never reaches SQL).
    """
    raw = (request.query_params.get(name) or "").strip()
    if not raw:
        return None
    if not _WHOLE.match(raw):
        errors[name] = ["Enter a whole number."]
        return None
    number = int(raw)
    return number if INT64[0] <= number <= INT64[1] else NO_MATCH


def boolean_filter(request: Request, name: str) -> bool | None:
    """django-filter's ``BooleanFilter`` (``NullBooleanSelect`` widget)."""
    return _BOOLEANS.get(request.query_params.get(name, ""))


def text_filter(request: Request, name: str, errors: FilterErrors | None = None) -> str | None:
    """django-filter's ``CharFilter`` (exact); NUL or a lone surrogate is a 400 like the form's."""
    value = request.query_params.get(name) or None
    message = unstorable(value) if value is not None else None
    if message is not None and errors is not None:
        errors[name] = [message]
        return None
    return value


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


def empty_page(request: Request) -> dict[str, Any]:
    """The envelope of a list no row can match (a filter value no key can hold)."""
    return Page.from_request(request, 0).envelope([])


def parse_key(raw: str) -> int:
    """A path id as Django looks it up: not an integer, or past 64 bits, means 404."""
    if len(raw) > 100:
        raise NotFound()
    try:
        key = int(raw)
    except ValueError:
        raise NotFound() from None
    if not INT64[0] <= key <= INT64[1]:
        raise NotFound()
    return key


MAX_TEXT_KEY = 1000
"""Longer path keys are 404 without a query (no mapped text key is this long)."""


def _key_part(raw: str, kind: KeyType) -> Any:
    if kind is KeyType.INTEGER:
        return parse_key(raw)
    if kind is KeyType.UUID:
        try:
            return uuid.UUID(raw)
        except ValueError:
            raise NotFound() from None
    if not raw or len(raw) > MAX_TEXT_KEY or unstorable(raw) is not None:
        raise NotFound()
    return raw


def parse_key_of(
    pair: TableMapping, raw: str | Sequence[str], side: KeySide = "service"
) -> tuple[Any, ...]:
    """The path's key parts (one per key column of ``side``) typed as the pair's key; 404
    when a part is not of its column's type or the number of parts is wrong."""
    parts = [raw] if isinstance(raw, str) else list(raw)
    kinds = pair.key.types_of(side)
    if len(parts) != len(kinds):
        raise NotFound()
    return tuple(_key_part(part, kind) for part, kind in zip(parts, kinds, strict=True))


def raise_for(errors: Mapping[str, list[str]]) -> None:
    """400 ``invalid`` with ``errors`` as the fields, if there are any."""
    if errors:
        raise ValidationFailed(dict(errors))
