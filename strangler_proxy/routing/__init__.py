"""Routing: from a request's raw path to the upstream that answers it.

Modules, in the order a request meets them:

    normalize   path normalisation before matching (dot segments, escapes, slashes)
    matcher     ``Route.matches() -> (Match, params)``; ``Router.resolve() -> Target``
    _canary     sticky, deterministic canary assignment (used by the matcher)

    path = normalize_path(raw_path, slashes=SlashPolicy.REJECT)
    target = router.resolve("GET", path, headers, client)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strangler_proxy.routing.matcher import CompiledRoute, Match, Router, Target
    from strangler_proxy.routing.normalize import SlashPolicy, normalize_path
else:
    from migration_plans.core.exports import lazy_exports

    __getattr__ = lazy_exports(
        __name__,
        {
            "normalize": ["SlashPolicy", "normalize_path"],
            "matcher": ["CompiledRoute", "Match", "Router", "Target"],
        },
    )

__all__ = ["CompiledRoute", "Match", "Router", "SlashPolicy", "Target", "normalize_path"]
