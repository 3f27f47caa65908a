"""References across databases: every referencing row's key exists on the owning side.

For each reference a context's plan declares (:mod:`migration_plans.core.references`,
e.g. inventory's ``stock_levels.product_id`` -> catalog's ``products``), the referencing
rows are read from the referencing context's source of truth and their keys looked up in
the owning pair's source of truth, each side chosen by its own context's phase (the
monolith's table until split, the service's from then on). The two may be different
databases, so nothing is joined: the referencing side's distinct values are read in
batches, each batch is looked up on the owning side, and the rows holding a value the
owner lacks are orphans.

The owning side is read after the referencing side, so a referenced row created while the
check runs is seen; a referenced row deleted meanwhile is an orphan, as it would be after.

    report = check_references(plans, "inventory", locate)
    report.verdict                 # clean | divergent | error
    print(to_json(report))
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from pydantic import BaseModel
from rich.table import Table
from sqlalchemy import Connection, TableClause, column, func, literal_column, select, table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import quoted_name

from migration_plans.core.keys import Side as KeySide
from migration_plans.core.mapping import TableMapping
from migration_plans.core.phase import Phase, Side
from migration_plans.core.plan import Plan
from migration_plans.core.references import Reference
from reconciler.connections import engine_for, require_database, snapshot
from reconciler.exceptions import ReconcileError, UnknownContext
from reconciler.report import Verdict

__all__ = ["Located", "Orphan", "ReferenceCheck", "ReferenceReport", "check_references"]

BATCH = 1000
"""Distinct referenced values looked up on the owning side per query."""


@dataclass(frozen=True)
class Located:
    """Where a context's data is: its phase and its two databases."""

    phase: Phase
    monolith_url: str
    service_url: str

    def url(self, side: Side) -> str:
        return self.monolith_url if side is Side.MONOLITH else self.service_url


Locate = Callable[[str], Located]
"""A context's phase and database URLs (:func:`reconciler.config.resolve` in the CLI)."""


class Orphan(BaseModel):
    """A referencing row whose referenced key the owning side does not have."""

    key: Any
    value: Any


class ReferenceCheck(BaseModel):
    """One declared reference, checked."""

    table: str
    column: str
    references: str
    referencing_side: str
    owning_side: str
    values_checked: int = 0
    orphans: int = 0
    rows: list[Orphan] = []
    error: str | None = None

    @property
    def verdict(self) -> Verdict:
        if self.error is not None:
            return Verdict.ERROR
        return Verdict.DIVERGENT if self.orphans else Verdict.CLEAN


class ReferenceReport(BaseModel):
    """Every reference of one context, checked across databases."""

    context: str
    kind: str = "references"
    checks: list[ReferenceCheck] = []

    @property
    def verdict(self) -> Verdict:
        verdicts = {check.verdict for check in self.checks}
        for verdict in (Verdict.ERROR, Verdict.DIVERGENT):
            if verdict in verdicts:
                return verdict
        return Verdict.CLEAN

    def to_json(self) -> str:
        data = self.model_dump(mode="json")
        data["verdict"] = self.verdict.value
        for check, dumped in zip(self.checks, data["checks"], strict=True):
            dumped["verdict"] = check.verdict.value
        return json.dumps(data, indent=2, default=str)

    def to_rich(self) -> Table:
        grid = Table(title=f"references of {self.context}: {self.verdict.value}")
        for heading in ("table.column", "references", "sides", "values", "orphans", "rows"):
            grid.add_column(heading)
        for check in self.checks:
            rows = ", ".join(f"{row.key} -> {row.value}" for row in check.rows)
            grid.add_row(
                f"{check.table}.{check.column}",
                check.references,
                f"{check.referencing_side} -> {check.owning_side}",
                str(check.values_checked),
                str(check.orphans),
                check.error or rows,
            )
        return grid


@dataclass(frozen=True)
class _Side:
    """One table as a phase stores it: the database, the table, its key and one column."""

    url: str
    name: str
    key: str
    column: str
    key_text: str = ""
    """SQL of the key text for reporting rows of a composite key ('' : the key column)."""

    def table(self) -> TableClause:
        return table(_quoted(self.name), column(_quoted(self.key)), column(_quoted(self.column)))

    def reported_key(self, t: TableClause) -> Any:
        """The key a listed row is reported by: the key column, or a composite's key text."""
        return literal_column(self.key_text) if self.key_text else t.c[0]


def _quoted(name: str) -> quoted_name:
    return quoted_name(name, quote=True)


def _referencing(pair: TableMapping, reference: Reference, where: Located) -> _Side:
    side = where.phase.source_of_truth
    role: KeySide = "service" if side is Side.SERVICE else "monolith"
    first = pair.key.columns(role)[0]
    url = where.service_url if side is Side.SERVICE else where.monolith_url
    dialect = engine_for(url).dialect.name
    key_text = pair.key.text_sql(None, dialect, role) if pair.key.is_composite else ""
    if side is Side.SERVICE:
        return _Side(where.service_url, pair.service_table, first, reference.column, key_text)
    monolith_column = next(f.monolith for f in pair.fields if f.service == reference.column)
    return _Side(where.monolith_url, pair.monolith_table, first, monolith_column, key_text)


def _owning(pair: TableMapping, where: Located) -> _Side:
    if pair.key.is_composite:
        raise ReconcileError(
            f"pair {pair.name!r} has a composite key: one referencing column cannot hold it"
        )
    side = where.phase.source_of_truth
    if side is Side.SERVICE:
        return _Side(where.service_url, pair.service_table, pair.key.service, pair.key.service)
    return _Side(where.monolith_url, pair.monolith_table, pair.key.monolith, pair.key.monolith)


def _batches(values: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while batch := list(islice(values, size)):
        yield batch


def _distinct_values(conn: Connection, side: _Side) -> Iterator[Any]:
    t = side.table()
    value = t.c[1]
    statement = select(value).where(value.is_not(None)).distinct().order_by(value)
    yield from conn.execute(statement).scalars()


def _present(conn: Connection, side: _Side, values: Sequence[Any]) -> set[Any]:
    key = side.table().c[0]
    return set(conn.execute(select(key).where(key.in_(values))).scalars())


def _orphan_rows(
    conn: Connection, side: _Side, missing: Sequence[Any], limit: int
) -> tuple[int, list[Orphan]]:
    t = side.table()
    key, value = t.c[0], t.c[1]
    count = conn.execute(select(func.count()).select_from(t).where(value.in_(missing))).scalar()
    key = side.reported_key(t)
    statement = select(key, value).where(value.in_(missing)).order_by(key).limit(limit)
    rows = [Orphan(key=row[0], value=row[1]) for row in conn.execute(statement)]
    return int(count or 0), rows


def _check(
    referencing: _Side, owning: _Side, check: ReferenceCheck, *, limit: int, batch: int
) -> None:
    for url in (referencing.url, owning.url):
        require_database(url)
    missing: list[Any] = []
    with snapshot(engine_for(referencing.url)) as conn:
        for values in _batches(_distinct_values(conn, referencing), batch):
            check.values_checked += len(values)
            with snapshot(engine_for(owning.url)) as owner:
                found = _present(owner, owning, values)
            missing.extend(value for value in values if value not in found)
    with snapshot(engine_for(referencing.url)) as conn:
        for values in _batches(iter(missing), batch):
            count, rows = _orphan_rows(conn, referencing, values, limit - len(check.rows))
            check.orphans += count
            check.rows.extend(rows)


def check_references(
    plans: Mapping[str, Plan],
    context: str,
    locate: Locate,
    *,
    limit: int = 100,
    batch: int = BATCH,
) -> ReferenceReport:
    """Check every reference ``context``'s plan declares; at most ``limit`` rows listed each."""
    if context not in plans:
        known = ", ".join(sorted(plans)) or "none"
        raise UnknownContext(f"unknown context {context!r} (plans: {known})")
    report = ReferenceReport(context=context)
    here = locate(context)
    for pair in plans[context].tables:
        for reference in pair.references:
            owner = locate(reference.context) if reference.context != context else here
            owner_pair = plans[reference.context].mapping.table(reference.table)
            check = ReferenceCheck(
                table=pair.name,
                column=reference.column,
                references=f"{reference.context}.{reference.table}",
                referencing_side=f"{context} {here.phase.source_of_truth.value}",
                owning_side=f"{reference.context} {owner.phase.source_of_truth.value}",
            )
            try:
                referencing = _referencing(pair, reference, here)
                owning = _owning(owner_pair, owner)
                _check(referencing, owning, check, limit=limit, batch=batch)
            except (ReconcileError, SQLAlchemyError) as exc:
                check.error = str(exc)
            report.checks.append(check)
    return report
