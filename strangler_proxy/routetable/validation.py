"""Whole-table rules, run after the model parsed: every issue names file, line and field.

Unknown upstreams, canary weights not summing to 100, duplicate route names, routes
an earlier route already covers, shadow blocks that would mirror unsafe methods to a
candidate not declared side-effect-free, and fallbacks that cannot happen. Rules
that depend on a context's migration phase come from a :class:`PhaseRules` hook.
"""

from __future__ import annotations

import math
from typing import Protocol

from migration_plans.core.http import SAFE_METHODS
from migration_plans.core.yamlfile import ConfigIssue, SourceDocument
from strangler_proxy.routetable.model import Route, RouteTable

Loc = tuple[str | int, ...]


class PhaseRules(Protocol):
    """Rules from the migration plans (writes to a service in ``shared``, fallback in ``split``).

    ``source.issue(loc, message)`` builds an issue with the line of ``loc``;
    ``table.located_routes()`` gives each route's ``loc``.
    """

    def check(self, table: RouteTable, source: SourceDocument) -> list[ConfigIssue]: ...


def check_table(
    table: RouteTable, source: SourceDocument, phase_rules: PhaseRules | None = None
) -> list[ConfigIssue]:
    """Every problem in ``table``, ordered by line."""
    issues = _check_globals(table, source)
    seen: dict[str, Loc] = {}
    earlier: list[tuple[Loc, Route]] = []
    for loc, _, route in table.located_routes():
        issues += _check_route(table, source, loc, route)
        if route.name in seen:
            first = source.line_of(seen[route.name])
            issues.append(
                source.issue((*loc, "name"), f"duplicate route name (first at line {first})")
            )
        seen.setdefault(route.name, loc)
        issues += _check_reachable(source, loc, route, earlier)
        earlier.append((loc, route))
    if phase_rules is not None:
        issues += phase_rules.check(table, source)
    return sorted(issues, key=lambda issue: (issue.line or 0, issue.field))


def _check_globals(table: RouteTable, source: SourceDocument) -> list[ConfigIssue]:
    issues = []
    if table.default_upstream not in table.upstreams:
        issues.append(_unknown(source, ("default_upstream",), table.default_upstream))
    if table.auth is not None and table.auth.upstream not in table.upstreams:
        issues.append(_unknown(source, ("auth", "upstream"), table.auth.upstream))
    return issues


def _unknown(source: SourceDocument, loc: Loc, name: str) -> ConfigIssue:
    return source.issue(loc, f"unknown upstream {name!r}")


def _check_route(
    table: RouteTable, source: SourceDocument, loc: Loc, route: Route
) -> list[ConfigIssue]:
    issues = []
    if route.upstream is not None and route.upstream not in table.upstreams:
        issues.append(_unknown(source, (*loc, "upstream"), route.upstream))
    if route.canary is not None:
        issues += _check_canary(table, source, (*loc, "canary", "split"), route)
    if route.shadow is not None:
        issues += _check_shadow(table, source, (*loc, "shadow"), route)
    if route.fallback:
        issues += _check_fallback(table, source, (*loc, "fallback"), route)
    return issues


def _check_canary(
    table: RouteTable, source: SourceDocument, loc: Loc, route: Route
) -> list[ConfigIssue]:
    assert route.canary is not None
    split = route.canary.split
    issues = [_unknown(source, (*loc, name), name) for name in split if name not in table.upstreams]
    total = sum(split.values())
    if not math.isclose(total, 100.0, abs_tol=1e-9):
        issues.append(source.issue(loc, f"canary weights sum to {total:g}, not 100"))
    return issues


def _check_shadow(
    table: RouteTable, source: SourceDocument, loc: Loc, route: Route
) -> list[ConfigIssue]:
    assert route.shadow is not None
    shadow = route.shadow
    issues = []
    if shadow.upstream not in table.upstreams:
        issues.append(_unknown(source, (*loc, "upstream"), shadow.upstream))
    elif route.upstream == shadow.upstream:
        issues.append(source.issue((*loc, "upstream"), "shadow upstream is the primary itself"))
    if shadow.calibrate is not None and shadow.calibrate not in table.upstreams:
        issues.append(_unknown(source, (*loc, "calibrate"), shadow.calibrate))
    unsafe = sorted(route.methods - SAFE_METHODS)
    if unsafe and not shadow.side_effect_free:
        issues.append(
            source.issue(
                (*loc, "side_effect_free"),
                f"would mirror unsafe methods {', '.join(unsafe)}: restrict the route's "
                "methods to reads or declare the candidate side_effect_free: true",
            )
        )
    return issues


def _check_fallback(
    table: RouteTable, source: SourceDocument, loc: Loc, route: Route
) -> list[ConfigIssue]:
    if not route.methods & SAFE_METHODS:
        return [source.issue(loc, "fallback only applies to reads; this route has none")]
    if set(route.targets) == {table.default_upstream}:
        return [source.issue(loc, f"route already goes to {table.default_upstream!r}")]
    return []


def _check_reachable(
    source: SourceDocument, loc: Loc, route: Route, earlier: list[tuple[Loc, Route]]
) -> list[ConfigIssue]:
    for other_loc, other in earlier:
        if route.methods <= other.methods and other.template.covers(route.template):
            line = source.line_of(other_loc)
            message = f"can never match: route {other.name!r} (line {line}) covers it"
            return [source.issue((*loc, route.template_field), message)]
    return []
