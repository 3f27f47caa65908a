"""Compare one case's two answers, and the databases after a write, through the allowances.

Responses: status, the headers that carry meaning (``Content-Type``'s media type,
``Allow`` as a set of methods, ``Location``, ``WWW-Authenticate``) and the JSON bodies
(deepdiff), with absolute links of each side rebased to its path. Writes: every key of
the context's table pairs is compared through the mapping with the reconciler's row
comparison; only divergences that were not there before the case count.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from deepdiff import DeepDiff
from sqlalchemy import Engine

from migration_plans.control.contract.allowances import Allowance
from migration_plans.core.mapping import ContextMapping
from migration_plans.core.sqlnames import quote_ident
from reconciler.connections import engine_for
from reconciler.incremental import check_keys
from reconciler.schema import PairSchema, inspect_pair

HEADERS = ("content-type", "allow", "location", "www-authenticate")


@dataclass(frozen=True)
class Answer:
    """What one side answered."""

    status: int
    headers: dict[str, str]
    content: bytes
    base: str

    def body(self) -> Any:
        if not self.content:
            return None
        try:
            return _rebase(json.loads(self.content), self.base)
        except ValueError:
            return self.content.decode("utf-8", errors="replace")

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        if value is None:
            return None
        if name == "allow":
            return ", ".join(sorted({m.strip().upper() for m in value.split(",") if m.strip()}))
        if name == "content-type":
            return value.split(";")[0].strip().lower()
        if name == "location":
            return value.removeprefix(self.base)
        return value


def _rebase(body: Any, base: str) -> Any:
    if isinstance(body, dict):
        return {key: _rebase(value, base) for key, value in body.items()}
    if isinstance(body, list):
        return [_rebase(item, base) for item in body]
    if isinstance(body, str) and body.startswith(base):
        return body[len(base) :]
    return body


def _without(body: Any, excluded: Sequence[re.Pattern[str]], path: str = "root") -> Any:
    """``body`` less the entries whose deepdiff path an allowance names (on both sides, so a
    parent that differs only in them compares equal)."""
    if not excluded:
        return body
    if isinstance(body, dict):
        kept = {}
        for key, value in body.items():
            child = f"{path}[{key!r}]"
            if not any(pattern.search(child) for pattern in excluded):
                kept[key] = _without(value, excluded, child)
        return kept
    if isinstance(body, list):
        return [_without(item, excluded, f"{path}[{i}]") for i, item in enumerate(body)]
    return body


@dataclass
class Verdict:
    """What differs in one case (empty: nothing undeclared), and what the allowances took."""

    differences: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)


def compare_answers(
    monolith: Answer, service: Answer, allowances: Sequence[Allowance], *, head: bool = False
) -> Verdict:
    """Status, meaningful headers and bodies of one case."""
    verdict = Verdict()
    if monolith.status != service.status:
        pair = (monolith.status, service.status)
        allowing = [a.name for a in allowances if pair in a.statuses]
        target = verdict.allowed if allowing else verdict.differences
        target.append(f"status {monolith.status} (monolith) != {service.status} (service)")
        return verdict
    for name in HEADERS:
        left, right = monolith.header(name), service.header(name)
        if left != right:
            allowing = [a.name for a in allowances if name in a.headers]
            target = verdict.allowed if allowing else verdict.differences
            target.append(f"header {name}: {left!r} (monolith) != {right!r} (service)")
    if head or any(a.body for a in allowances):
        return verdict
    excluded = [re.compile(path) for a in allowances for path in a.body_paths]
    diff = DeepDiff(_without(monolith.body(), excluded), _without(service.body(), excluded))
    if diff:
        verdict.differences.append(f"body: {_short(diff)}")
    return verdict


def _short(diff: DeepDiff, limit: int = 600) -> str:
    text = diff.pretty()
    return text if len(text) <= limit else text[:limit] + " ..."


@dataclass
class EffectComparer:
    """The context's tables on both databases, compared key by key through the mapping."""

    mapping: ContextMapping
    monolith: Engine
    service: Engine
    pairs: list[PairSchema] = field(default_factory=list)
    known: set[str] = field(default_factory=set)

    @classmethod
    def open(cls, mapping: ContextMapping, monolith_url: str, service_url: str) -> EffectComparer:
        monolith, service = engine_for(monolith_url), engine_for(service_url)
        pairs = [inspect_pair(table, monolith, service) for table in mapping.tables]
        comparer = cls(mapping, monolith, service, pairs)
        comparer.known = set(comparer.divergences(()))
        return comparer

    def _keys(self, pair: PairSchema) -> list[Any]:
        table = pair.mapping
        found: set[Any] = set()
        for engine, name, key in (
            (self.monolith, table.monolith_table, table.key.monolith),
            (self.service, table.service_table, table.key.service),
        ):
            with engine.connect() as conn:
                query = f"SELECT {quote_ident(key)} FROM {quote_ident(name)}"
                found.update(row[0] for row in conn.execute(sa.text(query)))
        return sorted(found)

    def divergences(self, allowed_fields: Sequence[str]) -> list[str]:
        """Every divergence now, in words (fields in ``allowed_fields`` ignored)."""
        found: list[str] = []
        for pair in self.pairs:
            result = check_keys(pair, (self.monolith, self.service), self._keys(pair))
            for divergence in result.divergences:
                fields = [f for f in divergence.fields if f.field not in allowed_fields]
                if divergence.fields and not fields:
                    continue
                detail = ", ".join(
                    f"{f.field}: {f.monolith!r} (monolith) != {f.service!r} (service)"
                    for f in fields
                )
                found.append(
                    f"{pair.mapping.name} key {divergence.key}: {divergence.kind.value}"
                    + (f" ({detail})" if detail else "")
                )
        return found

    def new_divergences(self, allowances: Sequence[Allowance]) -> list[str]:
        """Divergences that appeared since the last call (each reported once)."""
        allowed = [name for a in allowances for name in a.effect_fields]
        now = self.divergences(allowed)
        fresh = [d for d in now if d not in self.known]
        self.known.update(fresh)
        return fresh

    def close(self) -> None:
        self.monolith.dispose()
        self.service.dispose()
