from __future__ import annotations

import json
from typing import Any

from strangler_proxy.shadow._compare import (
    CompareRules,
    compare_responses,
    generalize_path,
    path_pattern,
)
from strangler_proxy.shadow.exchange import CapturedResponse


def as_json(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> CapturedResponse:
    pairs = (("content-type", "application/json"), *(headers or {}).items())
    return CapturedResponse(status, tuple(pairs), json.dumps(body).encode())


LISTING: dict[str, Any] = {
    "count": 2,
    "results": [
        {"id": 1, "name": "Lamp", "updated_at": "2026-01-01T00:00:00Z", "price": 79.19},
        {"id": 2, "name": "Desk", "updated_at": "2026-01-02T00:00:00Z", "price": 250},
    ],
}


def changed(**updates: Any) -> dict[str, Any]:
    results = [dict(item, **updates) for item in LISTING["results"]]
    return {**LISTING, "results": results}


def test_identical_responses_match() -> None:
    result = compare_responses(as_json(LISTING), as_json(LISTING))
    assert result.matched
    assert result.paths == ()


def test_renamed_field_reports_both_paths() -> None:
    renamed = {"id": 1, "title": "Lamp"}
    result = compare_responses(as_json({"id": 1, "name": "Lamp"}), as_json(renamed))
    assert result.paths == ("root['name']", "root['title']")
    kinds = {d.path: d.kind for d in result.differences}
    assert kinds == {
        "root['name']": "dictionary_item_removed",
        "root['title']": "dictionary_item_added",
    }


def test_wildcard_ignore_path_covers_every_list_item() -> None:
    candidate = as_json(changed(updated_at="2030-01-01T00:00:00Z"))
    assert compare_responses(as_json(LISTING), candidate).paths == (
        "root['results'][0]['updated_at']",
        "root['results'][1]['updated_at']",
    )
    rules = CompareRules(ignore_paths=("root['results'][*]['updated_at']",))
    assert compare_responses(as_json(LISTING), candidate, rules).matched


def test_ignore_path_does_not_hide_other_fields() -> None:
    candidate = as_json(changed(updated_at="x", name="Other"))
    rules = CompareRules(ignore_paths=("root['results'][*]['updated_at']",))
    result = compare_responses(as_json(LISTING), candidate, rules)
    assert result.paths == ("root['results'][0]['name']", "root['results'][1]['name']")


def test_ignoring_a_subtree_ignores_its_children_but_not_siblings() -> None:
    primary = as_json({"meta": {"at": 1, "by": "a"}, "metadata": 1})
    candidate = as_json({"meta": {"at": 2, "by": "b"}, "metadata": 2})
    rules = CompareRules(ignore_paths=("root['meta']",))
    assert compare_responses(primary, candidate, rules).paths == ("root['metadata']",)


def test_order_matters_unless_declared() -> None:
    reordered = {**LISTING, "results": LISTING["results"][::-1]}
    assert not compare_responses(as_json(LISTING), as_json(reordered)).matched
    everywhere = CompareRules(ignore_order=True)
    assert compare_responses(as_json(LISTING), as_json(reordered), everywhere).matched
    only_results = CompareRules(ignore_order=("root['results']",))
    assert compare_responses(as_json(LISTING), as_json(reordered), only_results).matched


def test_ignore_order_on_one_path_keeps_order_elsewhere() -> None:
    primary = as_json({"results": [1, 2], "steps": ["a", "b"]})
    candidate = as_json({"results": [2, 1], "steps": ["b", "a"]})
    rules = CompareRules(ignore_order=("root['results']",))
    assert compare_responses(primary, candidate, rules).paths == (
        "root['steps'][0]",
        "root['steps'][1]",
    )


def test_numeric_tolerance() -> None:
    primary, candidate = as_json({"price": 79.19}), as_json({"price": 79.1900004})
    assert not compare_responses(primary, candidate).matched
    assert compare_responses(primary, candidate, CompareRules(numeric_tolerance=1e-3)).matched
    far = as_json({"price": 80.0})
    assert not compare_responses(primary, far, CompareRules(numeric_tolerance=1e-3)).matched


def test_integer_and_float_forms_of_a_number_are_equal() -> None:
    assert compare_responses(as_json({"n": 250}), as_json({"n": 250.0})).matched


def test_status_difference() -> None:
    result = compare_responses(as_json({}, 200), as_json({}, 500))
    assert [(d.path, d.primary, d.candidate) for d in result.differences] == [
        ("status", "200", "500")
    ]


def test_only_allow_listed_headers_are_compared() -> None:
    primary = as_json({}, headers={"cache-control": "max-age=60", "date": "Mon"})
    candidate = as_json({}, headers={"Cache-Control": "no-store", "date": "Tue"})
    assert compare_responses(primary, candidate).matched
    rules = CompareRules(headers=("Cache-Control",))
    result = compare_responses(primary, candidate, rules)
    assert result.paths == ("header:cache-control",)


def test_non_json_bodies_are_compared_by_hash() -> None:
    text = (("content-type", "text/plain"),)
    same = compare_responses(
        CapturedResponse(200, text, b"abc"), CapturedResponse(200, text, b"abc")
    )
    assert same.matched
    result = compare_responses(
        CapturedResponse(200, text, b"abc"), CapturedResponse(200, text, b"abd")
    )
    assert result.paths == ("body",)
    assert result.differences[0].primary.startswith("sha256:")


def test_invalid_json_falls_back_to_hash() -> None:
    broken = CapturedResponse(200, (("content-type", "application/json"),), b"{not json")
    assert compare_responses(broken, broken).matched
    assert compare_responses(broken, as_json({})).paths == ("body",)


def test_rules_coerce_from_route_model_like_objects() -> None:
    class Compare:
        ignore_paths = ("root['x']",)
        ignore_order = True
        numeric_tolerance = 0.5
        headers = ("etag",)

    rules = CompareRules.coerce(Compare())
    assert rules == CompareRules(("root['x']",), True, 0.5, ("etag",))
    assert CompareRules.from_dict(rules.to_dict()) == rules


def test_path_helpers() -> None:
    assert generalize_path("root['results'][12]['tags'][0]") == "root['results'][*]['tags'][*]"
    pattern = path_pattern("root['results'][*]['updated_at']")
    assert pattern.match("root['results'][3]['updated_at']")
    assert not pattern.match("root['results'][3]['updated_at_x']")
    assert not pattern.match("root['other'][3]['updated_at']")


def test_compressed_bodies_are_compared_decoded() -> None:
    import gzip

    body = json.dumps({"id": 1, "name": "Lamp"}).encode()
    headers = (("content-type", "application/json"), ("content-encoding", "gzip"))
    fast = CapturedResponse(200, headers, gzip.compress(body, compresslevel=1, mtime=0))
    small = CapturedResponse(200, headers, gzip.compress(body, compresslevel=9, mtime=1))
    assert compare_responses(fast, small).matched
    plain = as_json({"id": 1, "title": "Lamp"})
    assert compare_responses(fast, plain).paths == ("root['name']", "root['title']")
