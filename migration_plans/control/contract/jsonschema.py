"""Hypothesis strategies from the JSON schemas drf-spectacular writes.

The subset an OpenAPI 3.0 document of a DRF API uses: ``type`` (or a list of types,
``nullable``), ``enum``, objects with ``properties``/``required``, arrays with
``items``/``minItems``/``maxItems``, integer and number bounds, string lengths,
``pattern`` and ``format: date-time``. (hypothesis-jsonschema 0.23 does not run on the
Hypothesis this project pins: it calls ``conjecture.utils.many.more()``, since removed.)

    strategy = from_schema({"type": "object", "properties": {"id": {"type": "integer"}}})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st

_SCALARS = ("string", "integer", "number", "boolean")


def from_schema(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Values ``schema`` accepts (and, where it leaves room, values at its edges)."""
    if "enum" in schema:
        return st.sampled_from(list(schema["enum"]))
    kinds = schema.get("type", list(_SCALARS))
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    options = [_typed(schema, kind) for kind in kinds]
    if schema.get("nullable") or "null" in kinds:
        options.append(st.none())
    return st.one_of(*options)


def _typed(schema: Mapping[str, Any], kind: str) -> st.SearchStrategy[Any]:
    if kind == "object":
        props = schema.get("properties") or {}
        required = set(schema.get("required", ()))
        writable = {k: v for k, v in props.items() if not v.get("readOnly")}
        return st.fixed_dictionaries(
            {k: from_schema(v) for k, v in writable.items() if k in required},
            optional={k: from_schema(v) for k, v in writable.items() if k not in required},
        )
    if kind == "array":
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", low + 4))
        return st.lists(from_schema(schema.get("items") or {}), min_size=low, max_size=high)
    if kind == "integer":
        low, high = _bounds(schema, 1)
        return st.integers(min_value=low, max_value=high)
    if kind == "number":
        low, high = _bounds(schema, 0)
        return st.one_of(
            st.integers(min_value=low, max_value=high),
            st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False),
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return _string(schema)


def _bounds(schema: Mapping[str, Any], step: int) -> tuple[Any, Any]:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and schema.get("exclusiveMinimum") is True:
        low += step
    if high is not None and schema.get("exclusiveMaximum") is True:
        high -= step
    return low, high


def _string(schema: Mapping[str, Any]) -> st.SearchStrategy[str]:
    low = int(schema.get("minLength", 0))
    high = schema.get("maxLength")
    if schema.get("format") == "date-time":
        return st.datetimes().map(lambda moment: moment.isoformat() + "Z")
    if "pattern" in schema:
        pattern = str(schema["pattern"])
        found = st.from_regex(pattern, fullmatch=True)
        return found.filter(
            lambda text: low <= len(text) <= (high if high is not None else len(text))
        )
    return st.text(min_size=low, max_size=int(high) if high is not None else None)
