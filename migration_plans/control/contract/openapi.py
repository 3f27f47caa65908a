"""The monolith's OpenAPI document, narrowed to the operations one context owns.

The plan's ``endpoints`` say which paths and methods belong to the context; each must
be documented by the monolith (drf-spectacular, ``/api/v1/schema/``). ``$ref``s are
inlined, so every schema here stands alone and can feed a generator.

    operations = select_operations(document, plan)
    operations[0].label        # 'GET /api/v1/categories/'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from migration_plans.control.contract.exceptions import ContractError
from migration_plans.core.plan import Plan

SCHEMA_PATH = "/api/v1/schema/?format=json"
"""Where the monolith serves its OpenAPI document (drf-spectacular's view)."""


@dataclass(frozen=True)
class Parameter:
    """A path or query parameter and its JSON schema."""

    name: str
    location: str
    schema: Mapping[str, Any]
    required: bool


@dataclass(frozen=True)
class Operation:
    """One documented method on one path template, its parameters and JSON body schema."""

    method: str
    path: str
    parameters: tuple[Parameter, ...]
    body: Mapping[str, Any] | None
    documented_methods: frozenset[str]
    statuses: frozenset[int] = frozenset()

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def writes_without_body(self) -> bool:
        """A write that takes no body (DELETE)."""
        return self.method not in {"GET", "HEAD", "OPTIONS"} and self.body is None

    def params(self, location: str) -> tuple[Parameter, ...]:
        return tuple(p for p in self.parameters if p.location == location)


def inline_refs(schema: Any, document: Mapping[str, Any], depth: int = 0) -> Any:
    """``schema`` with every local ``$ref`` replaced by what it points to."""
    if depth > 32:
        raise ContractError("the OpenAPI document's $refs nest more than 32 deep (recursive?)")
    if isinstance(schema, list):
        return [inline_refs(item, document, depth) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    if "$ref" in schema:
        target: Any = document
        for part in str(schema["$ref"]).removeprefix("#/").split("/"):
            target = target[part]
        return inline_refs(target, document, depth + 1)
    return {key: inline_refs(value, document, depth) for key, value in schema.items()}


def _operation(document: Mapping[str, Any], path: str, method: str) -> Operation:
    item = document["paths"][path]
    raw = item[method.lower()]
    parameters = tuple(
        Parameter(
            name=str(p["name"]),
            location=str(p["in"]),
            schema=inline_refs(p.get("schema", {}), document),
            required=bool(p.get("required", p["in"] == "path")),
        )
        for p in (*item.get("parameters", ()), *raw.get("parameters", ()))
        if p.get("in") in {"path", "query"}
    )
    content = (raw.get("requestBody") or {}).get("content") or {}
    body = content.get("application/json", {}).get("schema")
    documented = frozenset(m.upper() for m in item if m.upper() in _METHODS)
    return Operation(
        method=method.upper(),
        path=path,
        parameters=parameters,
        body=inline_refs(body, document) if body is not None else None,
        documented_methods=documented,
        statuses=frozenset(int(code) for code in raw.get("responses", {}) if code.isdigit()),
    )


_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def unserved(document: Mapping[str, Any], plan: Plan) -> list[str]:
    """The plan's operations the monolith does not serve (a service-only API, e.g. a port
    the monolith calls): nothing to compare them with."""
    paths = document.get("paths") or {}
    return [
        f"{method} {endpoint.path}"
        for endpoint in plan.endpoints
        for method in endpoint.methods
        if method not in {"HEAD", "OPTIONS"} and method.lower() not in paths.get(endpoint.path, {})
    ]


def select_operations(
    document: Mapping[str, Any], plan: Plan, only: Sequence[str] = ()
) -> list[Operation]:
    """The operations of ``plan``'s endpoints the monolith documents, in plan order
    (:func:`unserved` lists the others).

    ``only``: labels (``"GET /api/v1/products/"``) to keep; each must be one of them.
    """
    paths = document.get("paths") or {}
    found = [
        _operation(document, endpoint.path, method)
        for endpoint in plan.endpoints
        for method in endpoint.methods
        if method not in {"HEAD", "OPTIONS"} and method.lower() in paths.get(endpoint.path, {})
    ]
    if not found:
        raise ContractError(
            f"plan {plan.context}: none of its endpoints is in the monolith's OpenAPI document "
            f"({SCHEMA_PATH}): nothing to compare"
        )
    unknown = sorted(set(only) - {operation.label for operation in found})
    if unknown:
        known = ", ".join(operation.label for operation in found)
        raise ContractError(f"--operation {unknown[0]!r} is not one of {plan.context}'s: {known}")
    return [operation for operation in found if not only or operation.label in only]
