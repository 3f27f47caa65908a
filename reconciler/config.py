"""Where a context's plan and databases are, read once from the plan file and the environment.

The URL variables are the ones the services and the dual-write relay read.

Database URLs, first match wins:

- monolith: ``--monolith-url``, ``<CONTEXT>_MONOLITH_DATABASE_URL``,
  ``STRANGLER_MONOLITH_DATABASE_URL``, ``sqlite:///var/monolith.sqlite3``
- service: ``--service-url``, ``<CONTEXT>_DATABASE_URL``, ``sqlite:///var/<context>.sqlite3``

    target = resolve("catalog")
    target.plan.phase, target.monolith_url, target.service_url
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from migration_plans.core.plan import Plan, load_plan
from migration_plans.core.settings import plans_dir as configured_plans_dir
from reconciler.exceptions import UnknownContext


@dataclass(frozen=True)
class Target:
    """A context's plan and the two databases to compare."""

    plan: Plan
    monolith_url: str
    service_url: str


def plans_dir() -> Path:
    return configured_plans_dir()


def load_context_plan(context: str, directory: Path | None = None) -> Plan:
    """The plan of ``context``; :class:`UnknownContext` lists the known ones."""
    directory = directory or plans_dir()
    path = directory / f"{context}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.yaml"))) or "none"
        raise UnknownContext(f"unknown context {context!r} (plans in {directory}: {known})")
    return load_plan(path)


def _env(*names: str, default: str) -> str:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return default


def monolith_url(context: str) -> str:
    return _env(
        f"{context.upper()}_MONOLITH_DATABASE_URL",
        "STRANGLER_MONOLITH_DATABASE_URL",
        default="sqlite:///var/monolith.sqlite3",
    )


def service_url(context: str) -> str:
    return _env(f"{context.upper()}_DATABASE_URL", default=f"sqlite:///var/{context}.sqlite3")


def resolve(
    context: str,
    *,
    monolith: str | None = None,
    service: str | None = None,
    directory: Path | None = None,
) -> Target:
    """Plan and URLs of ``context`` (explicit URLs win over the environment)."""
    plan = load_context_plan(context, directory)
    return Target(
        plan=plan,
        monolith_url=monolith or monolith_url(context),
        service_url=service or service_url(context),
    )
