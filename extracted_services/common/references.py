"""Deletes the monolith would refuse: rows that another context, still in the monolith, references.

The plans declare references on the referencing side
(:mod:`migration_plans.core.references`: inventory's ``stock_levels.product_id`` holds
a key of catalog's ``products``). While a referencing context lives in the monolith
(shared or dual_write: its rows are in the monolith's tables, which are its source of
truth), the owning service asks the monolith's database, read-only, whether any of
those rows still holds the key, and refuses the delete with 409 ``in_use``: the body
the monolith's ``on_delete=PROTECT`` answers, and the delete the relay could not apply.

Once the referencing context is split its rows live in its own service: keeping them
consistent is then that service's responsibility (an API check or a saga), not
something this guard can see, so it asks nothing. References inside the service's own
context are its own database's foreign keys.

The referencing context's phase is its plan's (``strangler plan advance`` writes it),
unless ``<CONTEXT>_PHASE`` / ``STRANGLER_PHASE`` pins it, as every process reads it.
The check and the delete are not one transaction across two databases: a referencing
row inserted between them makes the relay dead-letter the delete, and
``strangler reconcile references`` reports the orphan.

    guard = ReferenceGuard("catalog", monolith=lambda: engine)
    guard.refuse_if_referenced("products", 7)       # raises InUse
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, column, select, table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import quoted_name

from extracted_services.common.database import read_session_factory
from extracted_services.common.errors import InUse, Unavailable
from migration_plans.core.phase import Phase
from migration_plans.core.plan import Plan, load_plans
from migration_plans.core.references import Referrer, referrers
from migration_plans.core.settings import context_env, plans_dir

__all__ = ["ReferenceGuard", "monolith_referrers"]

PhaseOf = Callable[[str], Phase]


def _planned_phase(plans: Mapping[str, Plan]) -> PhaseOf:
    def phase_of(context: str) -> Phase:
        pinned = context_env(context, "PHASE")
        return Phase(pinned) if pinned else plans[context].phase

    return phase_of


@lru_cache(maxsize=4)
def _plans_at(directory: Path, _signature: tuple[tuple[str, int], ...]) -> dict[str, Plan]:
    return load_plans(directory)


def deployment_plans(directory: Path | None = None) -> dict[str, Plan]:
    """The deployment's plans, read again only when a file in the folder changed."""
    directory = directory or plans_dir()
    signature = tuple(
        (path.name, path.stat().st_mtime_ns) for path in sorted(directory.glob("*.yaml"))
    )
    return _plans_at(directory, signature)


def monolith_referrers(
    plans: Mapping[str, Plan], context: str, table_name: str, phase_of: PhaseOf | None = None
) -> tuple[Referrer, ...]:
    """The referrers of ``context``'s ``table_name`` whose rows are in the monolith's tables:
    other contexts, not split."""
    phase_of = phase_of or _planned_phase(plans)
    return tuple(
        referrer
        for referrer in referrers(plans, context, table_name)
        if referrer.context != context and phase_of(referrer.context) is not Phase.SPLIT
    )


class ReferenceGuard:
    """Refuses, with :class:`InUse`, to delete a row the monolith's tables still reference."""

    def __init__(
        self,
        context: str,
        *,
        monolith: Callable[[], Engine | None],
        plans: Callable[[], Mapping[str, Plan]] = deployment_plans,
        phase_of: PhaseOf | None = None,
    ) -> None:
        self.context = context
        self.monolith = monolith
        self.plans = plans
        self.phase_of = phase_of

    def refuse_if_referenced(self, table_name: str, key: Any) -> None:
        """Raise :class:`InUse` when a row in the monolith references ``key`` of ``table_name``;
        :class:`Unavailable` when the monolith's database is needed but cannot be asked."""
        found = monolith_referrers(self.plans(), self.context, table_name, self.phase_of)
        if not found:
            return
        engine = self.monolith()
        if engine is None:
            raise Unavailable(
                f"{self.context}: the monolith's database is not configured; deleting "
                f"{table_name} needs it while {found[0].context}'s rows live there"
            )
        try:
            with read_session_factory(engine)() as session:
                for referrer in found:
                    if session.scalar(_any_row(referrer, key)) is not None:
                        raise InUse()
        except SQLAlchemyError as exc:
            raise Unavailable(f"{self.context}: the monolith's database is unreachable") from exc


def _any_row(referrer: Referrer, key: Any) -> Any:
    """``SELECT 1 FROM <monolith table> WHERE <column> = :key LIMIT 1`` (names quoted)."""
    referencing = table(
        quoted_name(referrer.pair.monolith_table, quote=True),
        column(quoted_name(referrer.monolith_column, quote=True)),
    )
    return select(1).select_from(referencing).where(referencing.c[0] == key).limit(1)
