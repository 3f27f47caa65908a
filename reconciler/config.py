"""Where a context's plan and databases are: :class:`ContextSettings`, read once.

The plans folder, the URL variables and the phase are the ones the services and the
dual-write relay read (:mod:`migration_plans.core.settings`).

Database URLs, first match wins:

- monolith: ``--monolith-url``, ``<CONTEXT>_MONOLITH_DATABASE_URL``,
  ``STRANGLER_MONOLITH_DATABASE_URL``, ``sqlite:///var/monolith.sqlite3``
- service: ``--service-url``, ``<CONTEXT>_DATABASE_URL``, ``sqlite:///var/<context>.sqlite3``

    target = resolve("catalog")
    target.phase, target.plan.mapping, target.monolith_url, target.service_url
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from migration_plans.core.phase import Phase
from migration_plans.core.plan import Plan
from migration_plans.core.settings import ContextSettings, plan_for, plan_path, plans_dir
from reconciler.exceptions import UnknownContext

__all__ = ["Target", "load_context_plan", "plans_dir", "resolve"]


@dataclass(frozen=True)
class Target:
    """A context's plan, its phase and the two databases to compare."""

    plan: Plan
    monolith_url: str
    service_url: str
    phase: Phase
    reverse_sync: bool


def _require_plan(context: str, directory: Path) -> None:
    if not plan_path(context, directory).exists():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.yaml"))) or "none"
        raise UnknownContext(f"unknown context {context!r} (plans in {directory}: {known})")


def load_context_plan(context: str, directory: Path | None = None) -> Plan:
    """The plan of ``context``; :class:`UnknownContext` lists the known ones."""
    directory = directory or plans_dir()
    _require_plan(context, directory)
    return plan_for(context, directory)


def resolve(
    context: str,
    *,
    monolith: str | None = None,
    service: str | None = None,
    directory: Path | None = None,
) -> Target:
    """Plan, phase and URLs of ``context`` (explicit URLs win over the environment)."""
    settings = ContextSettings.from_env(context)
    if directory is not None:
        settings = replace(settings, plans_dir=directory)
    _require_plan(context, settings.plans_dir)
    return Target(
        plan=settings.plan,
        monolith_url=monolith or settings.monolith_url,
        service_url=service or settings.service_url,
        phase=settings.phase,
        reverse_sync=settings.reverse_sync,
    )
