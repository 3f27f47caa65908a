"""Building blocks the shadow tests share: JSON responses and outcomes."""

from __future__ import annotations

import json
from typing import Any

from strangler_proxy.shadow._compare import CompareRules, compare_responses
from strangler_proxy.shadow.exchange import CapturedRequest, CapturedResponse
from strangler_proxy.shadow.store import Outcome

JSON = (("content-type", "application/json"),)


def json_response(body: Any, status: int = 200) -> CapturedResponse:
    return CapturedResponse(status, JSON, json.dumps(body).encode())


def outcome(
    route: str,
    primary: Any,
    candidate: Any,
    *,
    context: str = "catalog",
    path: str = "/api/v1/products/1/",
    at: float | None = None,
    headers: tuple[tuple[str, str], ...] = (("Authorization", "Token s3cret"),),
) -> Outcome:
    """A compared outcome of GET ``path`` (matched or not, from the bodies)."""
    request = CapturedRequest("GET", path, headers)
    left, right = json_response(primary), json_response(candidate)
    result = compare_responses(left, right, CompareRules())
    kind = "matched" if result.matched else "mismatched"
    extra = {} if at is None else {"at": at}
    return Outcome(route, kind, context, request, left, right, result, **extra)  # type: ignore[arg-type]
