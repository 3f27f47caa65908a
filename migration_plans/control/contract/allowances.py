"""The differences the contract check accepts, each with its reason: ONE YAML file.

    allowances:
      - name: timestamps
        why: each side stamps its own writes, microseconds apart
        body_paths: ["\\\\['(created_at|updated_at)'\\\\]$"]   # regexes on deepdiff paths
        effect_fields: [created_at, updated_at]               # database columns (service names)
      - name: unknown product in a stock filter
        why: the inventory service does not own products
        contexts: [inventory]
        operations: ["GET /api/v1/stock/"]
        statuses: [[400, 200]]                                 # (monolith, service)

An allowance applies to a case when its ``contexts``, ``operations``, ``methods`` and
``kinds`` (each empty = any) all match. It may accept status pairs, body paths, headers
(by name) and database fields. Anything else that differs is an undeclared difference.

    allowances = load_allowances(Path("allowances.yaml"))
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from migration_plans.core.settings import TEMPLATES_DIR
from migration_plans.core.yamlfile import load_model

DEFAULT_ALLOWANCES = TEMPLATES_DIR / "contract" / "allowances.yaml"
"""The shipped allowances (``--allowances`` replaces them)."""


class Allowance(BaseModel):
    """One accepted difference and where it applies."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    why: str = Field(min_length=1, description="Why the difference cannot be avoided.")
    contexts: tuple[str, ...] = ()
    operations: tuple[str, ...] = Field(default=(), description="'METHOD /path/template/'.")
    methods: tuple[str, ...] = Field(default=(), description="Methods actually sent (HEAD...).")
    kinds: tuple[str, ...] = Field(default=(), description="generated, hostile, protocol.")
    statuses: tuple[tuple[int, int], ...] = Field(
        default=(), description="(monolith, service) status pairs accepted."
    )
    body_paths: tuple[str, ...] = Field(default=(), description="deepdiff path regexes.")
    body: bool = Field(default=False, description="Bodies are not compared at all.")
    headers: tuple[str, ...] = ()
    effect_fields: tuple[str, ...] = ()

    @field_validator("body_paths")
    @classmethod
    def _regexes(cls, paths: tuple[str, ...]) -> tuple[str, ...]:
        for path in paths:
            try:
                re.compile(path)
            except re.error as exc:
                raise ValueError(f"{path!r} is not a regular expression: {exc}") from exc
        return paths

    @field_validator("headers")
    @classmethod
    def _lower(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(name.lower() for name in names)

    def applies(self, context: str, operation: str, method: str, kind: str) -> bool:
        """Whether this allowance covers a case of ``operation`` sent as ``method``."""
        return (
            (not self.contexts or context in self.contexts)
            and (not self.operations or operation in self.operations)
            and (not self.methods or method in self.methods)
            and (not self.kinds or kind in self.kinds)
        )


class Allowances(BaseModel):
    """The allowances file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allowances: tuple[Allowance, ...] = ()

    def for_case(self, context: str, operation: str, method: str, kind: str) -> list[Allowance]:
        return [a for a in self.allowances if a.applies(context, operation, method, kind)]


def load_allowances(path: Path | None = None) -> Allowances:
    """The allowances at ``path`` (default: the shipped file); errors name file:line: field."""
    return load_model(path or DEFAULT_ALLOWANCES, Allowances)
