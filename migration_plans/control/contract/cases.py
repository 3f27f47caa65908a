"""Requests to send to both sides, generated from the operations' schemas.

Three kinds, all reproducible from ``(examples, seed)``:

- ``generated``: ``examples`` requests per operation drawn by Hypothesis from the
  parameter and body schemas (hypothesis-jsonschema), seeded;
- ``hostile``: every integer, boolean and text input replaced, one at a time, by values
  a schema-following client never sends (``1e300000``, ids past 64 bits, ``true`` for
  a number, NUL, lone surrogates);
- ``protocol``: HEAD, OPTIONS and an undocumented method on each path, and for each
  body a request without a JSON content type, with broken JSON and without credentials.

    cases = build_cases(operations, examples=20, seed=1)
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as seeded
from hypothesis import strategies as st

from migration_plans.control.contract.jsonschema import from_schema
from migration_plans.control.contract.openapi import Operation
from migration_plans.core.http import SAFE_METHODS

JSON = "application/json"


@dataclass(frozen=True)
class Case:
    """One request: sent as is to the monolith and, with the service's credentials, to it."""

    operation: str
    kind: str
    method: str
    target: str
    body: bytes | None = None
    content_type: str | None = None
    authenticated: bool = True
    note: str = ""

    @property
    def writes(self) -> bool:
        return self.method not in SAFE_METHODS

    def curl(self, base: str = "${STRANGLER_URL:-http://127.0.0.1:8000}") -> str:
        """The request as a shell command (``$TOKEN``: a monolith API token)."""
        parts = ["curl", "-sS", "-i", "-X", self.method]
        url = f'"{base}"{shlex.quote(self.target)}'
        if self.method == "HEAD":
            parts = ["curl", "-sS", "-I"]
        if self.authenticated:
            parts += ["-H", '"Authorization: Token $TOKEN"']
        if self.content_type:
            parts += ["-H", shlex.quote(f"Content-Type: {self.content_type}")]
        if self.body is not None:
            text = self.body.decode("utf-8", errors="backslashreplace")
            parts += ["--data-binary", shlex.quote(text)]
        return " ".join([*parts, url])


def _encode(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


def _target(operation: Operation, path: Mapping[str, Any], query: Mapping[str, Any]) -> str:
    target = operation.path
    for name, value in path.items():
        target = target.replace(
            "{" + name + "}", quote(_encode(value), safe="", errors="surrogatepass")
        )
    pairs = [
        f"{quote(name)}={quote(_encode(value), safe='', errors='surrogatepass')}"
        for name, value in query.items()
        if value is not None
    ]
    return target + ("?" + "&".join(pairs) if pairs else "")


def _json(value: Any) -> bytes:
    # ensure_ascii: NUL and lone surrogates travel as \u escapes, valid JSON text
    return json.dumps(value, ensure_ascii=True, allow_nan=False).encode("ascii")


def _id_strategy(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Ids mostly among the seeded rows (so reads and writes hit something), sometimes not."""
    return st.one_of(st.integers(1, 40), from_schema(dict(schema)))


def _request_strategy(operation: Operation) -> st.SearchStrategy[tuple[Any, ...]]:
    path = st.fixed_dictionaries({p.name: _id_strategy(p.schema) for p in operation.params("path")})
    query = st.fixed_dictionaries(
        {},
        optional={p.name: from_schema(dict(p.schema)) for p in operation.params("query")},
    )
    body = from_schema(dict(operation.body)) if operation.body is not None else st.none()
    return st.tuples(path, query, body)


def _draw(strategy: st.SearchStrategy[Any], examples: int, seed: int) -> list[Any]:
    drawn: list[Any] = []

    @seeded(seed)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: Any) -> None:
        drawn.append(value)

    collect()
    unique: list[Any] = []
    for value in drawn:
        if value not in unique:
            unique.append(value)
    return unique[:examples]


def generated(operation: Operation, examples: int, seed: int) -> list[Case]:
    """``examples`` schema-following requests for ``operation`` (fewer if they repeat)."""
    cases = []
    for path, query, body in _draw(_request_strategy(operation), examples, seed):
        cases.append(
            Case(
                operation=operation.label,
                kind="generated",
                method=operation.method,
                target=_target(operation, path, query),
                body=_json(body) if operation.body is not None else None,
                content_type=JSON if operation.body is not None else None,
            )
        )
    return cases


HOSTILE_QUERY: dict[str, tuple[str, ...]] = {
    "integer": (
        "-1e300",
        "1e300000",
        "99999999999999999999",
        "-9223372036854775809",
        "2147483648",
        "-1",
        "1.5",
        "true",
        "0x1A",
        "\u0661\u0662",
        " 7",
    ),
    "boolean": ("1", "0", "yes", "TRUE", "2", "3", "on"),
    "string": ("a\x00b", "\U0001f600", "%"),
}
HOSTILE_QUERY["number"] = HOSTILE_QUERY["integer"] + ("7.890958745093202e+37", "1e3", "2.0")
HOSTILE_PATH = ("99999999999999999999", "-1", "2147483648", "1e3", "1.0", "0", "\u0661")
HOSTILE_JSON: dict[str, tuple[Any, ...]] = {
    "integer": (
        True,
        False,
        1.5,
        1.0,
        "1",
        "1e3",
        2**31,
        2**63,
        -14744202133734287360,
        1e300,
        None,
        [],
    ),
    "boolean": (1, 0, "true", "yes", "on", 2, None, "True"),
    "string": ("a\x00b", "\ud800", " ", 12, True, None, "x" * 300, {}),
    "number": (True, "1e300000", 1e300, "NaN", "-0", None),
}
HOSTILE_JSON["decimal"] = ("NaN", "Infinity", "1e300000", 1e300, True, "-0.001", " 1.5 ", None)


def _kind(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type", "string")
    if kind == "string" and schema.get("format") == "decimal":
        return "decimal"
    return str(kind)


def _sample(schema: Mapping[str, Any]) -> Any:
    """A simple value ``schema`` accepts (the base a hostile case changes one leaf of)."""
    kind = _kind(schema)
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: _sample(props[name]) for name in schema.get("required", ()) if name in props}
    if kind == "array":
        return [_sample(schema.get("items") or {})] * max(1, int(schema.get("minItems", 1)))
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return 1
    if kind == "boolean":
        return True
    if kind == "decimal":
        return "1.00"
    if "enum" in schema:
        return schema["enum"][0]
    return "x" * max(1, int(schema.get("minLength", 1)))


def _leaves(
    schema: Mapping[str, Any], at: tuple[Any, ...] = ()
) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every scalar position of ``schema`` (arrays: their first item) and its kind."""
    kind = _kind(schema)
    if kind == "object":
        for name, sub in (schema.get("properties") or {}).items():
            if not sub.get("readOnly"):
                yield from _leaves(sub, (*at, name))
    elif kind == "array":
        yield from _leaves(schema.get("items") or {}, (*at, 0))
    else:
        yield at, kind


def _with(value: Any, at: Sequence[Any], leaf: Any) -> Any:
    if not at:
        return leaf
    head, rest = at[0], at[1:]
    if isinstance(value, list):
        copy = list(value) or [None]
        copy[head] = _with(copy[head], rest, leaf)
        return copy
    copy_map = dict(value) if isinstance(value, dict) else {}
    copy_map[head] = _with(copy_map.get(head, {}), rest, leaf)
    return copy_map


def hostile(operation: Operation) -> list[Case]:
    """One input at a time replaced by a value no schema-following client sends."""
    base_path = {p.name: 1 for p in operation.params("path")}
    cases: list[Case] = []

    def add(note: str, path: Mapping[str, Any], query: Mapping[str, Any], body: Any) -> None:
        has_body = operation.body is not None
        cases.append(
            Case(
                operation=operation.label,
                kind="hostile",
                method=operation.method,
                target=_target(operation, path, query),
                body=_json(body) if has_body else None,
                content_type=JSON if has_body else None,
                note=note,
            )
        )

    base_body = _sample(operation.body) if operation.body is not None else None
    for param in operation.params("path"):
        for raw in HOSTILE_PATH:
            add(f"path {param.name}={raw!r}", {**base_path, param.name: raw}, {}, base_body)
    for param in operation.params("query"):
        for raw in HOSTILE_QUERY.get(_kind(param.schema), HOSTILE_QUERY["string"]):
            add(f"query {param.name}={raw!r}", base_path, {param.name: raw}, base_body)
    if operation.body is not None:
        for at, kind in _leaves(operation.body):
            for leaf in HOSTILE_JSON.get(kind, HOSTILE_JSON["string"]):
                where = ".".join(str(part) for part in at)
                add(f"body {where}={leaf!r}", base_path, {}, _with(base_body, at, leaf))
    return cases


PROBE_METHODS = ("PUT", "DELETE", "POST", "PATCH")


def protocol(operation: Operation, plan_methods: frozenset[str]) -> list[Case]:
    """HEAD/OPTIONS/an undocumented method on the path; body without JSON type; no credentials."""
    path = {p.name: 1 for p in operation.params("path")}
    target = _target(operation, path, {})
    label = operation.label
    cases: list[Case] = []
    owner = "GET" if "GET" in plan_methods else min(plan_methods)
    if operation.method == owner:  # once per path, on the operation that documents reads
        cases += [
            Case(label, "protocol", "HEAD", target, authenticated=False, note="HEAD"),
            Case(label, "protocol", "OPTIONS", target, authenticated=False, note="OPTIONS"),
        ]
        unknown = [m for m in PROBE_METHODS if m not in operation.documented_methods | plan_methods]
        if unknown:
            cases.append(Case(label, "protocol", unknown[0], target, note="undocumented method"))
    if operation.body is not None:
        body = _json(_sample(operation.body))
        cases += [
            Case(label, "protocol", operation.method, target, body, None, note="no content type"),
            Case(
                label, "protocol", operation.method, target, body, "text/plain", note="text/plain"
            ),
            Case(label, "protocol", operation.method, target, b"{", JSON, note="broken JSON"),
            Case(label, "protocol", operation.method, target, body, JSON, False, "no credentials"),
        ]
    elif operation.writes_without_body:
        cases.append(
            Case(
                label,
                "protocol",
                operation.method,
                target,
                authenticated=False,
                note="no credentials",
            )
        )
    return cases


def build_cases(operations: Sequence[Operation], *, examples: int, seed: int) -> list[Case]:
    """Every case of every operation: protocol and hostile first, then the generated ones."""
    methods: dict[str, set[str]] = {}
    for operation in operations:
        methods.setdefault(operation.path, set()).add(operation.method)
    cases: list[Case] = []
    for index, operation in enumerate(operations):
        cases += protocol(operation, frozenset(methods[operation.path]))
        cases += hostile(operation)
        cases += generated(operation, examples, seed + index)
    return cases
