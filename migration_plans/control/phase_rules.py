"""Route-table rules that come from the migration plans (the proxy validator's hook).

A route that sends writes to a service whose context is still in ``shared``, or that
falls back to the monolith in ``split``, contradicts the plan and is rejected with the
route's file and line.

    table = load_table(Path("routes.yaml"), phase_rules=PlanPhaseRules(read_plans(plans_dir())))
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from migration_plans.control.exceptions import PlansMissing
from migration_plans.control.plan_file import read_plans
from migration_plans.core.http import SAFE_METHODS
from migration_plans.core.phase import Side
from migration_plans.core.plan import Plan
from migration_plans.core.yamlfile import ConfigError, ConfigIssue, SourceDocument
from strangler_proxy.routetable.model import Route, RouteTable


def route_writes(route: Route) -> frozenset[str]:
    """The unsafe methods a route carries."""
    return frozenset(route.methods) - SAFE_METHODS


def route_targets(route: Route) -> set[str]:
    """Upstreams that receive the route's primary traffic (canary legs with weight > 0)."""
    if route.canary is not None:
        return {name for name, weight in route.canary.split.items() if weight > 0}
    return set(route.targets)


class PlanPhaseRules:
    """:class:`strangler_proxy.routetable.validation.PhaseRules` backed by the plans of every context."""

    def __init__(self, plans: Mapping[str, Plan]) -> None:
        self.plans = dict(plans)

    def check(self, table: RouteTable, source: SourceDocument) -> list[ConfigIssue]:
        issues: list[ConfigIssue] = []
        for loc, context, route in table.located_routes():
            plan = self.plans.get(context)
            if plan is not None:
                issues += self._check_route(plan, source, loc, route)
        return issues

    def _check_route(
        self, plan: Plan, source: SourceDocument, loc: tuple[str | int, ...], route: Route
    ) -> list[ConfigIssue]:
        issues: list[ConfigIssue] = []
        writes = route_writes(route)
        if not plan.phase.owns_database and writes and plan.upstream in route_targets(route):
            field = "canary" if route.canary is not None else "upstream"
            issues.append(
                source.issue(
                    (*loc, field),
                    f"route {route.name!r} sends {', '.join(sorted(writes))} to "
                    f"{plan.upstream!r}, but context {plan.context!r} is in phase 'shared': "
                    "writes must go to the monolith until the context enters dual_write",
                )
            )
        if plan.phase.source_of_truth is Side.SERVICE and route.fallback:
            issues.append(
                source.issue(
                    (*loc, "fallback"),
                    f"route {route.name!r} falls back to the monolith, but context "
                    f"{plan.context!r} is in phase 'split': the service is the source of "
                    "truth and the monolith may be stale",
                )
            )
        return issues


class PlansOnDisk:
    """Phase rules that re-read the plan files at every check (a proxy's hot reload).

    A plan folder that is missing, empty or does not validate is itself an issue: the
    route table is then refused and the last good one keeps serving.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def check(self, table: RouteTable, source: SourceDocument) -> list[ConfigIssue]:
        try:
            plans = read_plans(self.directory)
        except ConfigError as exc:
            return [
                ConfigIssue(issue.path, issue.line, issue.field, f"plan: {issue.message}")
                for issue in exc.issues
            ]
        except PlansMissing as exc:
            return [ConfigIssue(str(self.directory), None, "", f"plan: {exc}")]
        return PlanPhaseRules(plans).check(table, source)
