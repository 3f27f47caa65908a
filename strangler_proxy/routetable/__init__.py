"""The route table: what the proxy serves, parsed once from YAML into frozen models.

Modules, in the order a table is read:

    model       upstreams, contexts, routes (canary, shadow, record, auth), from YAML
    _template   path templates: matching regexes and coverage (unreachable routes)
    validation  whole-table rules, with a :class:`PhaseRules` hook for migration plans
    loader      load + validate + build the router; the live table holder, hot reload
    diff        what moves between two tables (``strangler routes diff``)

    loaded = load_table(Path("routes.yaml"))
    holder = TableHolder(loaded)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strangler_proxy.routetable._template import PathTemplate
    from strangler_proxy.routetable.diff import Move, diff_tables
    from strangler_proxy.routetable.loader import (
        LoadedTable,
        ReloadError,
        TableHolder,
        load_table,
        parse_table,
    )
    from strangler_proxy.routetable.model import (
        AuthSettings,
        BreakerSettings,
        Canary,
        Context,
        Record,
        Route,
        RouteTable,
        Shadow,
        Sticky,
        Timeouts,
        Upstream,
    )
    from strangler_proxy.routetable.validation import PhaseRules, check_table
else:
    from migration_plans.core.exports import lazy_exports

    __getattr__ = lazy_exports(
        __name__,
        {
            "model": [
                "AuthSettings",
                "BreakerSettings",
                "Canary",
                "Context",
                "Record",
                "Route",
                "RouteTable",
                "Shadow",
                "Sticky",
                "Timeouts",
                "Upstream",
            ],
            "_template": ["PathTemplate"],
            "validation": ["PhaseRules", "check_table"],
            "loader": ["LoadedTable", "ReloadError", "TableHolder", "load_table", "parse_table"],
            "diff": ["Move", "diff_tables"],
        },
    )

__all__ = [
    "AuthSettings",
    "BreakerSettings",
    "Canary",
    "Context",
    "LoadedTable",
    "Move",
    "PathTemplate",
    "PhaseRules",
    "Record",
    "ReloadError",
    "Route",
    "RouteTable",
    "Shadow",
    "Sticky",
    "TableHolder",
    "Timeouts",
    "Upstream",
    "check_table",
    "diff_tables",
    "load_table",
    "parse_table",
]
