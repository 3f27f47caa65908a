"""Template parsing, matching and route coverage."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from strangler_proxy.routetable._template import PathTemplate
from strangler_proxy.routetable.loader import LoadedTable
from strangler_proxy.routetable.model import Route
from strangler_proxy.routing.matcher import CompiledRoute, Match

TableFactory = Callable[..., LoadedTable]


@pytest.mark.parametrize(
    ("template", "path", "params"),
    [
        ("/api/v1/products/{id}/", "/api/v1/products/42/", {"id": "42"}),
        ("/api/v1/products/{id}/", "/api/v1/products/abc/", {"id": "abc"}),
        ("/api/v1/products/{id:int}/", "/api/v1/products/42/", {"id": "42"}),
        ("/api/v1/products/{id:int}/", "/api/v1/products/x/", None),
        ("/api/v1/products/{id}/", "/api/v1/products/42", None),
        ("/api/v1/products/{id}/", "/api/v1/products//", None),
        ("/files/{rest:path}", "/files/a/b/c", {"rest": "a/b/c"}),
        ("/files/{rest:path}", "/files", None),
        ("/", "/", {}),
        ("/", "/x", None),
        ("/a/{x}/b/{y:int}", "/a/1/b/2", {"x": "1", "y": "2"}),
    ],
)
def test_template_match(template: str, path: str, params: dict[str, str] | None) -> None:
    assert PathTemplate.parse(template).match(path) == params


@pytest.mark.parametrize(
    ("prefix", "path", "matches"),
    [
        ("/api/v1/products/", "/api/v1/products/", True),
        ("/api/v1/products/", "/api/v1/products", True),
        ("/api/v1/products/", "/api/v1/products/1/reviews/", True),
        ("/api/v1/products", "/api/v1/products/1", True),
        ("/api/v1/products/", "/api/v1/productsx", False),
        ("/api/v1/products/", "/api/v1/product", False),
        ("/", "/anything/at/all", True),
        ("/api/{version}/", "/api/v9/x", True),
    ],
)
def test_prefix_match(prefix: str, path: str, matches: bool) -> None:
    assert (PathTemplate.parse(prefix, prefix=True).match(path) is not None) is matches


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("api/v1", "must start with '/'"),
        ("/a/{x", "malformed parameter"),
        ("/a/{x:float}", "malformed parameter"),
        ("/a/{1x}", "malformed parameter"),
        ("/{a}/{a}", "appears twice"),
        ("/f/{r:path}/x", "last segment"),
        ("/a/../b", "not in normalised form"),
        ("/a//b", "not in normalised form"),
        ("/a/%7euser", "not in normalised form"),
        ("/a/%2fb", "not a normalised path"),
    ],
)
def test_malformed_templates(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        PathTemplate.parse(text)


@pytest.mark.parametrize(
    ("first", "second", "covers"),
    [
        (("/a/{x}", False), ("/a/b", False), True),
        (("/a/{x}", False), ("/a/{y:int}", False), True),
        (("/a/{x:int}", False), ("/a/{y}", False), False),
        (("/a/{x:int}", False), ("/a/12", False), True),
        (("/a/b", False), ("/a/{x}", False), False),
        (("/a/", True), ("/a/b/{c}", False), True),
        (("/a/", True), ("/a/", True), True),
        (("/a/b/", True), ("/a/", True), False),
        (("/a/", True), ("/b/", True), False),
        (("/", True), ("/anything/{x}/", False), True),
        (("/f/{r:path}", False), ("/f/x/y", False), True),
        (("/f/{r:path}", False), ("/f/", True), False),
        (("/f/", True), ("/f/{r:path}", False), True),
        (("/a/{x}/", False), ("/a/{x}", False), False),
    ],
)
def test_coverage(first: tuple[str, bool], second: tuple[str, bool], covers: bool) -> None:
    a = PathTemplate.parse(first[0], prefix=first[1])
    b = PathTemplate.parse(second[0], prefix=second[1])
    assert a.covers(b) is covers


def test_route_matches_returns_a_value() -> None:
    route = Route(name="r", path="/x/{id}", methods=["GET"], upstream="m")
    compiled = CompiledRoute(route, "ctx")
    assert compiled.matches("GET", "/x/1") == (Match.FULL, {"id": "1"})
    assert compiled.matches("POST", "/x/1") == (Match.PARTIAL, {"id": "1"})
    assert compiled.matches("GET", "/y/1") == (Match.NONE, {})


def test_router_first_match_in_file_order_and_default(make_table: TableFactory) -> None:
    router = make_table().router
    detail = router.resolve("GET", "/api/v1/products/5/", {}, "1.1.1.1")
    assert (detail.route_name, detail.upstream, detail.fallback) == (
        "product-detail",
        "catalog",
        "monolith",
    )
    assert detail.params == {"id": "5"}
    listing = router.resolve("GET", "/api/v1/products/", {}, "1.1.1.1")
    assert (listing.route_name, listing.upstream) == ("products", "monolith")
    write = router.resolve("POST", "/api/v1/products/5/", {}, "1.1.1.1")
    assert (write.route_name, write.fallback) == ("products", None)
    other = router.resolve("DELETE", "/api/v1/products/5/", {}, "1.1.1.1")
    assert (other.route_name, other.upstream) == ("default", "monolith")
    stock = router.resolve("PATCH", "/api/v1/stock/AB-1/", {}, "1.1.1.1")
    assert (stock.context, stock.upstream) == ("inventory", "inventory")
