"""References between contexts, declared in the plans on the referencing side.

A table pair names the columns that hold another pair's key (``stock_levels.product_id``
holds a key of catalog's ``products``)::

    tables:
      - name: stock_levels
        ...
        references:
          - {column: product_id, context: catalog, table: products}

``column`` is a mapped *service* column of the pair (its monolith column comes from the
mapping); ``context`` and ``table`` name the owning plan and its pair (the same context
for a reference inside it). A plan checks its own columns when it loads; the set of plans
resolves contexts and tables (:func:`reference_problems`, run by
:func:`migration_plans.core.plan.load_plans`). The owning side finds who references its
rows with :func:`referrers`.

    for referrer in referrers(plans, "catalog", "products"):
        referrer.context, referrer.pair.monolith_table, referrer.monolith_column
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from migration_plans.core.sqlnames import SqlName

if TYPE_CHECKING:
    from migration_plans.core.mapping import TableMapping
    from migration_plans.core.plan import Plan

__all__ = ["Reference", "ReferenceProblem", "Referrer", "reference_problems", "referrers"]


class Reference(BaseModel):
    """A column of this pair that holds a key of ``context``'s pair ``table``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    column: SqlName
    context: SqlName
    table: str


@dataclass(frozen=True)
class ReferenceProblem:
    """A reference the set of plans cannot resolve, located in its plan's ``tables:``."""

    context: str
    loc: tuple[int | str, ...]
    message: str


@dataclass(frozen=True)
class Referrer:
    """A pair of ``context`` whose ``reference`` points at another pair's rows."""

    context: str
    pair: TableMapping
    reference: Reference

    @property
    def service_column(self) -> str:
        return self.reference.column

    @property
    def monolith_column(self) -> str:
        """The referencing column as the monolith names it (through the mapping)."""
        for field in self.pair.fields:
            if field.service == self.reference.column:
                return field.monolith
        return self.pair.key.monolith


def reference_problems(plans: Mapping[str, Plan]) -> list[ReferenceProblem]:
    """Every reference whose context or table no plan in ``plans`` declares."""
    found = []
    for plan in plans.values():
        for t, pair in enumerate(plan.tables):
            for r, reference in enumerate(pair.references):
                loc: tuple[int | str, ...] = ("tables", t, "references", r)
                owner = plans.get(reference.context)
                if owner is None:
                    known = ", ".join(sorted(plans)) or "none"
                    message = f"unknown context {reference.context!r} (plans: {known})"
                    found.append(ReferenceProblem(plan.context, (*loc, "context"), message))
                elif reference.table not in {table.name for table in owner.tables}:
                    known = ", ".join(table.name for table in owner.tables)
                    message = (
                        f"context {reference.context!r} has no table {reference.table!r} "
                        f"(known: {known})"
                    )
                    found.append(ReferenceProblem(plan.context, (*loc, "table"), message))
    return found


def referrers(plans: Mapping[str, Plan], context: str, table: str) -> tuple[Referrer, ...]:
    """Every pair, in any plan, that references ``context``'s pair ``table``."""
    return tuple(
        Referrer(plan.context, pair, reference)
        for plan in plans.values()
        for pair in plan.tables
        for reference in pair.references
        if (reference.context, reference.table) == (context, table)
    )
