"""``strangler contract check``: differential checks of a service against the monolith.

Requests generated from the monolith's OpenAPI document for one context's endpoints go
to the monolith and to the service, each running on its own copy of the same data;
answers and database effects are compared through the mapping, minus the declared
allowances. Pipeline: openapi -> cases -> environment -> compare -> report.

    from migration_plans.control.contract import check_context, load_allowances
    report = check_context(plan, plans_dir, load_allowances(), examples=25, seed=1)

Exports load lazily: the CLI mounts ``contract`` without importing Hypothesis.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Allowances": "migration_plans.control.contract.allowances",
    "ContractError": "migration_plans.control.contract.exceptions",
    "ContractReport": "migration_plans.control.contract.report",
    "EnvironmentFailed": "migration_plans.control.contract.exceptions",
    "check_context": "migration_plans.control.contract.check",
    "load_allowances": "migration_plans.control.contract.allowances",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
