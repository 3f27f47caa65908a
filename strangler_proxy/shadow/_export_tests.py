"""Turn stored mismatches into a pytest file of regression cases.

Each case is a request the candidate answered differently from the primary, with
the primary's (redacted) response as the expectation and the comparison rules of
the route (plus learned noise, plus the fields redaction blanked out). The file
fails until the service answers like the primary, then stays as a regression
guard. It needs only httpx and this package:

    strangler shadow export-tests --out tests/regressions/test_catalog_shadow.py
    SHADOW_TARGET_URL=http://127.0.0.1:8101 pytest tests/regressions/test_catalog_shadow.py
"""

from __future__ import annotations

import json
import pprint
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from strangler_proxy.shadow._compare import CompareRules
from strangler_proxy.shadow._redaction import REDACTED
from strangler_proxy.shadow.exchange import CapturedResponse
from strangler_proxy.shadow.store import ShadowResults

__all__ = ["collect_cases", "export_tests", "render_test_file"]

_TEMPLATE = '''"""Shadow regression cases exported by `strangler shadow export-tests` on {when}.

Each case replays a request whose candidate response differed from the primary's
and expects the primary's response under the route's comparison rules. Run it
against the service under test:

    SHADOW_TARGET_URL=http://127.0.0.1:8101 pytest {{this file}}
"""

from __future__ import annotations

import base64
import os

import httpx
import pytest

from strangler_proxy.shadow._compare import CompareRules, compare_responses
from strangler_proxy.shadow.exchange import CapturedResponse

TARGET = os.environ.get("SHADOW_TARGET_URL", {target!r})

CASES = [
{cases}
]


@pytest.mark.parametrize(("request_", "expected", "rules"), CASES)
def test_candidate_answers_like_primary(request_: dict, expected: dict, rules: dict) -> None:
    response = httpx.request(
        request_["method"],
        TARGET.rstrip("/") + request_["path"],
        headers=request_["headers"],
        content=base64.b64decode(request_["body_b64"]),
        timeout=10.0,
    )
    actual = CapturedResponse(
        response.status_code, tuple(response.headers.items()), response.content
    )
    result = compare_responses(
        CapturedResponse.from_dict(expected), actual, CompareRules.from_dict(rules)
    )
    assert result.matched, "\\n".join(
        f"{{d.path}}: primary {{d.primary}}, service {{d.candidate}}" for d in result.differences
    )
'''


def _redacted_paths(value: Any, path: str = "root") -> list[str]:
    """deepdiff paths of the values redaction replaced (they cannot be compared)."""
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            child = f"{path}[{key!r}]"
            found += [child] if item == REDACTED else _redacted_paths(item, child)
        return found
    if isinstance(value, list):
        return [
            p for index, item in enumerate(value) for p in _redacted_paths(item, f"{path}[{index}]")
        ]
    return []


def _case_rules(expected: CapturedResponse, rules: CompareRules) -> CompareRules:
    if not expected.is_json:
        return rules
    try:
        return rules.with_ignored(_redacted_paths(expected.json_body()))
    except ValueError:
        return rules


def _usable(sample: Mapping[str, Any]) -> bool:
    request, primary = sample.get("request"), sample.get("primary")
    if not request or not primary:
        return False
    return not (request.get("body_truncated") or primary.get("body_truncated"))


def collect_cases(
    store: ShadowResults,
    *,
    route: str | None = None,
    since: float | None = None,
    rules: Mapping[str, CompareRules] | None = None,
    per_route: int = 20,
) -> list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """``(id, request, expected, rules)`` per distinct stored mismatch."""
    rules = rules or {}
    noise = store.noise()
    cases, seen = [], set()
    for name in [route] if route else sorted(store.routes()):
        base = rules.get(name, CompareRules()).with_ignored(noise.get(name, ()))
        for sample in store.samples(name, since=since, limit=per_route):
            request = sample.get("request") or {}
            key = (request.get("method"), request.get("path"), request.get("body_b64"))
            if not _usable(sample) or key in seen:
                continue
            seen.add(key)
            headers = [pair for pair in request.get("headers", []) if pair[1] != REDACTED]
            expected = sample["primary"]
            case_rules = _case_rules(CapturedResponse.from_dict(expected), base)
            case_id = f"{name} {request['path']}"
            cases.append((case_id, {**request, "headers": headers}, expected, case_rules.to_dict()))
    return cases


def _param(case: tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]) -> str:
    case_id, request, expected, rules = case
    body = ",\n".join(
        "        " + pprint.pformat(part, width=92, sort_dicts=True).replace("\n", "\n        ")
        for part in (request, expected, rules)
    )
    return f"    pytest.param(\n{body},\n        id={json.dumps(case_id)},\n    ),"


def render_test_file(
    cases: Iterable[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]],
    *,
    target: str = "http://127.0.0.1:8101",
) -> str:
    """The pytest module text (valid Python, formatted like the rest of the tree)."""
    when = datetime.now(UTC).isoformat(timespec="seconds")
    return _TEMPLATE.format(when=when, target=target, cases="\n".join(map(_param, cases)))


def export_tests(
    store: ShadowResults,
    *,
    route: str | None = None,
    since: float | None = None,
    rules: Mapping[str, CompareRules] | None = None,
    target: str = "http://127.0.0.1:8101",
) -> tuple[str, int]:
    """The file text and how many cases it holds."""
    cases = collect_cases(store, route=route, since=since, rules=rules)
    return render_test_file(cases, target=target), len(cases)
