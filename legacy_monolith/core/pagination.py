"""Page-number pagination: ``?page=`` and ``?page_size=`` (default 20, max 100)."""

from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """The envelope ``{"count", "next", "previous", "results"}`` every list returns."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100
