"""The contract check's parts without processes: operations from the OpenAPI document,
reproducible cases, the comparison and the allowances file."""

from __future__ import annotations

from pathlib import Path

import pytest

from migration_plans.control.contract.allowances import Allowance, load_allowances
from migration_plans.control.contract.cases import build_cases
from migration_plans.control.contract.compare import Answer, compare_answers
from migration_plans.control.contract.exceptions import ContractError
from migration_plans.control.contract.openapi import select_operations, unserved
from migration_plans.control.contract.report import printable
from migration_plans.core.plan import Endpoint, load_plan
from migration_plans.core.settings import TEMPLATES_DIR
from migration_plans.core.yamlfile import ConfigError

PLAN = load_plan(TEMPLATES_DIR / "catalog.yaml")
DOCUMENT = {
    "paths": {
        "/api/v1/categories/": {
            "get": {
                "parameters": [
                    {"name": "page", "in": "query", "schema": {"type": "integer"}},
                ],
                "responses": {"200": {}, "404": {}},
            },
            "post": {
                "requestBody": {
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/C"}}}
                },
                "responses": {"201": {}, "400": {}},
            },
        },
        "/api/v1/categories/{id}/": {
            method: {
                "parameters": [{"name": "id", "in": "path", "schema": {"type": "integer"}}],
                "responses": {"200": {}},
            }
            for method in ("get", "put", "patch", "delete")
        },
        "/api/v1/products/": {"get": {"responses": {}}, "post": {"responses": {}}},
        "/api/v1/products/{id}/": {m: {"responses": {}} for m in ("get", "put", "patch", "delete")},
    },
    "components": {
        "schemas": {
            "C": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 5},
                    "slug": {"type": "string", "pattern": "^[a-z]+$"},
                    "rank": {"type": "integer", "minimum": 0},
                },
                "required": ["name"],
            }
        }
    },
}


def test_operations_are_the_plans_endpoints_with_refs_inlined():
    operations = select_operations(DOCUMENT, PLAN)
    assert [op.label for op in operations][:3] == [
        "GET /api/v1/categories/",
        "POST /api/v1/categories/",
        "GET /api/v1/categories/{id}/",
    ]
    create = operations[1]
    assert create.body is not None and create.body["properties"]["name"]["maxLength"] == 5
    assert operations[0].statuses == {200, 404}


def test_endpoints_the_monolith_does_not_serve_are_listed_apart():
    plan = PLAN.model_copy(
        update={"endpoints": (*PLAN.endpoints, Endpoint(path="/api/v1/tags/", methods=("GET",)))}
    )
    assert unserved(DOCUMENT, plan) == ["GET /api/v1/tags/"]
    assert "GET /api/v1/tags/" not in {op.label for op in select_operations(DOCUMENT, plan)}
    with pytest.raises(ContractError, match="none of its endpoints"):
        select_operations({"paths": {}}, plan)
    with pytest.raises(ContractError, match="--operation 'GET /nope/'"):
        select_operations(DOCUMENT, PLAN, ("GET /nope/",))


def test_cases_are_reproducible_and_bounded():
    operations = select_operations(DOCUMENT, PLAN, ("POST /api/v1/categories/",))
    first = build_cases(operations, examples=6, seed=3)
    assert first == build_cases(operations, examples=6, seed=3)
    assert first != build_cases(operations, examples=6, seed=4)
    assert 0 < sum(case.kind == "generated" for case in first) <= 6
    notes = {case.note for case in first}
    assert {"body rank=True", "body name='a\\x00b'", "no content type"} <= notes
    curl = next(case for case in first if case.note == "body rank=True").curl()
    assert "-X POST" in curl and "Content-Type: application/json" in curl
    assert '--data-binary \'{"name": "x", "rank": true}\'' in curl


def answer(status: int, body: bytes = b"{}", **headers: str) -> Answer:
    return Answer(status, {k.replace("_", "-"): v for k, v in headers.items()}, body, "http://h")


def test_allow_is_a_set_and_links_are_rebased():
    left = answer(200, b'{"next": "http://h/x/?page=2"}', allow="GET, POST, HEAD, OPTIONS")
    right = Answer(
        200, {"allow": "POST, GET, OPTIONS, HEAD"}, b'{"next": "http://s/x/?page=2"}', "http://s"
    )
    assert compare_answers(left, right, []).differences == []


def test_allowances_take_what_they_name_and_nothing_else():
    left = answer(400, b'{"fields": {"product": ["x"], "quantity": ["y"]}}')
    right = answer(400, b'{"fields": {"quantity": ["y"]}}')
    allowance = Allowance(name="n", why="w", body_paths=(r"\['fields'\]\['product'\]$",))
    assert compare_answers(left, right, [allowance]).differences == []
    other = answer(400, b'{"fields": {"quantity": ["z"]}}')
    assert compare_answers(left, other, [allowance]).differences != []
    statuses = Allowance(name="n", why="w", statuses=((400, 200),))
    verdict = compare_answers(answer(400), answer(200), [statuses])
    assert (verdict.differences, len(verdict.allowed)) == ([], 1)
    assert compare_answers(answer(400), answer(404), [statuses]).differences != []


def test_the_shipped_allowances_load_and_bad_ones_name_their_line(tmp_path: Path):
    assert {a.name for a in load_allowances().allowances} >= {"timestamps", "options-metadata"}
    bad = tmp_path / "allowances.yaml"
    bad.write_text("allowances:\n  - name: x\n    why: y\n    body_paths: ['[unclosed']\n")
    with pytest.raises(ConfigError, match=r"allowances.yaml:4"):
        load_allowances(bad)


def test_the_table_shows_control_characters_as_text():
    assert printable("a\x1b[31mb\x00 \u202e é") == "a\\x1b[31mb\\x00 \\u202e é"
