from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from strangler_proxy.shadow._report import build_report, render
from strangler_proxy.shadow.store import MemoryShadowStore

from .helpers import outcome


@pytest.fixture
def filled() -> MemoryShadowStore:
    store = MemoryShadowStore()
    for _ in range(3):
        store.record(outcome("product-detail", {"name": "a"}, {"name": "a"}))
    store.record(outcome("product-detail", {"name": "<b>"}, {"title": "<b>"}))
    store.record(outcome("category-list", {"r": [1, 2]}, {"r": [2, 1]}))
    return store


def test_json_report(filled: MemoryShadowStore) -> None:
    document = json.loads(render(build_report(filled), "json"))
    routes = {route["route"]: route for route in document["routes"]}
    detail = routes["product-detail"]
    assert (detail["compared"], detail["matched"], detail["mismatched"]) == (4, 3, 1)
    assert detail["match_rate"] == 0.75
    assert {f["path"] for f in detail["top_fields"]} == {"root['name']", "root['title']"}
    assert detail["examples"][0]["request"] == "GET /api/v1/products/1/"
    assert document["totals"]["compared"] == 5
    assert sum(point["compared"] for point in detail["series"]) == 4


def test_table_report_names_routes_rates_and_paths(filled: MemoryShadowStore) -> None:
    text = render(build_report(filled), "table")
    assert "product-detail" in text and "75.00%" in text
    assert "root['r'][0]" in text
    assert "root['title']" in text


def test_report_for_one_route(filled: MemoryShadowStore) -> None:
    document = json.loads(render(build_report(filled, route="category-list"), "json"))
    assert [r["route"] for r in document["routes"]] == ["category-list"]


def test_html_report_is_escaped_and_well_formed(filled: MemoryShadowStore) -> None:
    page = render(build_report(filled), "html")
    assert "<b>" not in page.split("<body>", 1)[1].replace("<b>", "", 0) or "&lt;b&gt;" in page
    assert "&lt;b&gt;" in page

    class Tags(HTMLParser):
        tables = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tables += tag == "table"

    parser = Tags()
    parser.feed(page)
    assert parser.tables >= 2
    assert "75.00%" in page


def test_unknown_format_is_refused(filled: MemoryShadowStore) -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render(build_report(filled), "xml")


def test_html_report_plots_the_match_rate_over_time() -> None:
    store = MemoryShadowStore()
    for minute, candidate in enumerate([{"a": 1}, {"a": 2}, {"a": 1}]):
        store.record(outcome("r", {"a": 1}, candidate, at=1_000_000 + minute * 60))
    page = render(build_report(store), "html")
    assert "<polyline" in page and 'points="0.0,0.0 120.0,40.0 240.0,0.0"' in page
