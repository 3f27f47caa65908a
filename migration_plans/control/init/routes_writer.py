"""The context's route-table entries, rendered by the control plane's own renderer.

    text = routes_text(plan, url="http://127.0.0.1:8201")

The result is a whole route table (the monolith as default upstream, the service as
``<context>``) with the context's routes for its phase; copy its ``contexts.<context>``
group and its upstream into a deployment's table.
"""

from __future__ import annotations

from migration_plans.control.routing import render_routes
from migration_plans.core.plan import Plan


def routes_text(plan: Plan, *, url: str, monolith_url: str = "http://127.0.0.1:8001") -> str:
    """A route table with the monolith and ``plan``'s service, ``plan``'s routes in it."""
    return render_routes({"monolith": monolith_url, plan.upstream: url}, {plan.context: plan})
