"""Page-number pagination exactly as the monolith's DRF does it.

``?page=`` (a number or ``last``) and ``?page_size=`` (default 20, capped at 100;
invalid values fall back to the default); an invalid page is a 404 ``Invalid page.``.
``next``/``previous`` are absolute URLs built from the request, with the query
re-encoded in sorted order (DRF's ``replace_query_param``).

    page = Page.from_request(request, count)
    rows = fetch(offset=page.offset, limit=page.size)
    return page.envelope(results)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib import parse

from starlette.requests import Request

from extracted_services.common.errors import NotFound

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def page_size(request: Request) -> int:
    """DRF's ``get_page_size``: a strictly positive integer, capped; the default otherwise."""
    raw = request.query_params.get("page_size")
    try:
        size = int(raw) if raw is not None else DEFAULT_PAGE_SIZE
    except ValueError:
        return DEFAULT_PAGE_SIZE
    if size <= 0:
        return DEFAULT_PAGE_SIZE
    return min(size, MAX_PAGE_SIZE)


def page_number(raw: str | None, pages: int) -> int:
    """Django's ``Paginator.validate_number`` (``last`` is the last page)."""
    if not raw:
        return 1
    if raw == "last":
        return pages
    try:
        number = int(raw)
    except ValueError:
        raise NotFound("Invalid page.") from None
    if number < 1 or number > pages:
        raise NotFound("Invalid page.")
    return number


def absolute_url(request: Request) -> str:
    """What Django's ``request.build_absolute_uri()`` returns for this request.

    The Host is one the service allows (:mod:`extracted_services.common.hosts` refused
    the others before the request got here).
    """
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    query = request.scope.get("query_string", b"").decode("latin-1")
    path = parse.quote(request.scope.get("root_path", "") + request.scope["path"], safe="/")
    return f"{request.url.scheme}://{host}{path}" + (f"?{query}" if query else "")


def replace_query_param(url: str, key: str, value: object) -> str:
    scheme, netloc, path, query, fragment = parse.urlsplit(url)
    params = parse.parse_qs(query, keep_blank_values=True)
    params[key] = [str(value)]
    query = parse.urlencode(sorted(params.items()), doseq=True)
    return parse.urlunsplit((scheme, netloc, path, query, fragment))


def remove_query_param(url: str, key: str) -> str:
    scheme, netloc, path, query, fragment = parse.urlsplit(url)
    params = parse.parse_qs(query, keep_blank_values=True)
    params.pop(key, None)
    query = parse.urlencode(sorted(params.items()), doseq=True)
    return parse.urlunsplit((scheme, netloc, path, query, fragment))


@dataclass(frozen=True)
class Page:
    """One page of a list of ``count`` items."""

    number: int
    size: int
    count: int
    url: str

    @classmethod
    def from_request(cls, request: Request, count: int) -> Page:
        size = page_size(request)
        pages = max(1, math.ceil(count / size))
        number = page_number(request.query_params.get("page"), pages)
        return cls(number=number, size=size, count=count, url=absolute_url(request))

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def next_url(self) -> str | None:
        if self.number * self.size >= self.count:
            return None
        return replace_query_param(self.url, "page", self.number + 1)

    @property
    def previous_url(self) -> str | None:
        if self.number <= 1:
            return None
        if self.number == 2:
            return remove_query_param(self.url, "page")
        return replace_query_param(self.url, "page", self.number - 1)

    def envelope(self, results: list[Any]) -> dict[str, Any]:
        """``{"count", "next", "previous", "results"}``."""
        return {
            "count": self.count,
            "next": self.next_url,
            "previous": self.previous_url,
            "results": results,
        }
