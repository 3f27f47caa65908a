"""The contract suite's requests and the ONE list of differences it accepts.

The same request sequence goes to a real monolith process and a real service process;
responses must match status for status and field for field (deepdiff), except for
what :data:`DIFFERENCES` declares here, each with its reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from deepdiff import DeepDiff


@dataclass(frozen=True)
class Step:
    """One request of a sequence; ``auth`` sends each side's credentials."""

    name: str
    method: str
    path: str
    body: Any = None
    auth: bool = False


@dataclass(frozen=True)
class Difference:
    """A difference the contract accepts, and why it cannot be avoided."""

    why: str
    exclude_regex_paths: tuple[str, ...] = ()
    phases: tuple[str, ...] = ("dual_write", "split")


TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

DIFFERENCES: dict[str, Difference] = {
    "timestamps": Difference(
        why=(
            "With separate databases each side stamps its own writes, microseconds apart. "
            "The format is still checked (ISO 8601, 6-digit microseconds, Z)."
        ),
        exclude_regex_paths=(r"\['(created_at|updated_at)'\]$",),
    ),
}
"""Accepted differences, by name. In the shared phase none applies: both read one database."""

UNCOMPARED_STEPS: dict[str, str] = {
    "stock filtered by a product the monolith does not know": (
        "Products belong to the catalog context: once the inventory service owns its data it "
        "cannot tell an unknown product (monolith: 400 invalid choice) from one without stock "
        "(service: 200, empty page)."
    ),
    "reserve an unknown product": (
        "Same reason: the monolith answers 400 'Invalid pk' from its catalog table; the "
        "inventory service, which does not own products, answers 409 insufficient_stock."
    ),
}
"""Steps whose responses are not compared in the phases with a service database, and why."""


def _timestamps(body: Any) -> list[str]:
    if isinstance(body, dict):
        found = [v for k, v in body.items() if k in {"created_at", "updated_at"}]
        return found + [t for v in body.values() for t in _timestamps(v)]
    if isinstance(body, list):
        return [t for item in body for t in _timestamps(item)]
    return []


def _rebase(body: Any, base: str) -> Any:
    if isinstance(body, dict):
        return {key: _rebase(value, base) for key, value in body.items()}
    if isinstance(body, list):
        return [_rebase(item, base) for item in body]
    if isinstance(body, str) and body.startswith(base):
        return "BASE" + body[len(base) :]
    return body


@dataclass
class Exchange:
    step: Step
    status: int
    body: Any
    base: str


@dataclass
class Comparison:
    """Every mismatch between the two sides' exchanges, in words."""

    phase: str
    mismatches: list[str] = field(default_factory=list)

    def compare(self, monolith: Exchange, service: Exchange) -> None:
        name = monolith.step.name
        if self.phase != "shared" and name in UNCOMPARED_STEPS:
            return
        if monolith.status != service.status:
            self.mismatches.append(
                f"{name}: status {monolith.status} (monolith) != {service.status} (service): "
                f"{monolith.body!r} vs {service.body!r}"
            )
            return
        excluded = [
            path
            for difference in DIFFERENCES.values()
            if self.phase in difference.phases
            for path in difference.exclude_regex_paths
        ]
        diff = DeepDiff(
            _rebase(monolith.body, monolith.base),
            _rebase(service.body, service.base),
            exclude_regex_paths=excluded,
        )
        if diff:
            self.mismatches.append(f"{name}: {diff.pretty()}")
        for stamp in _timestamps(service.body):
            if not TIMESTAMP.match(str(stamp)):
                self.mismatches.append(f"{name}: timestamp {stamp!r} is not the contract's format")
