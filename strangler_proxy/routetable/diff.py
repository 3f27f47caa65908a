"""The reviewable cut-over diff between two route tables.

For every method + path template either table names (and "everything else"), resolve
a sample path in both tables and report where its traffic goes before and after:

    GET /api/v1/products/{id}/  monolith -> catalog  (route product-detail)
    GET /api/v1/categories/     canary monolith 90 / catalog 10 -> canary monolith 50 / catalog 50
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from migration_plans.core.http import HTTP_METHODS
from strangler_proxy.routetable.loader import LoadedTable
from strangler_proxy.routetable.model import Route
from strangler_proxy.routing.matcher import Target

_METHOD_ORDER = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]
_PROBE_CLIENT = "diff-probe"


@dataclass(frozen=True)
class Move:
    """One method + path whose destination differs between the tables."""

    method: str
    path: str
    before: str
    after: str
    route_before: str
    route_after: str

    def __str__(self) -> str:
        names = {self.route_before, self.route_after} - {"default"}
        route = f"  (route {', '.join(sorted(names))})" if names else ""
        return f"{self.method:7} {self.path}  {self.before} -> {self.after}{route}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def destination(target: Target) -> str:
    """Readable destination: an upstream, or the canary split with weights."""
    route = target.route
    if route is None or route.canary is None:
        return target.upstream + (f" (fallback {target.fallback})" if target.fallback else "")
    parts = [f"{name} {weight:g}" for name, weight in route.canary.split.items()]
    return "canary " + " / ".join(parts)


def diff_tables(old: LoadedTable, new: LoadedTable) -> list[Move]:
    """Every method + path that moves, in a stable order."""
    moves = []
    for method, text, sample in _probes(old, new):
        before = old.router.resolve(method, sample, {}, _PROBE_CLIENT)
        after = new.router.resolve(method, sample, {}, _PROBE_CLIENT)
        was, now = destination(before), destination(after)
        if was != now:
            moves.append(Move(method, text, was, now, before.route_name, after.route_name))
    return moves


def _probes(old: LoadedTable, new: LoadedTable) -> list[tuple[str, str, str]]:
    seen: dict[tuple[str, str], str] = {}
    for loaded in (old, new):
        for compiled in loaded.router.routes:
            _add(seen, compiled.route)
    everything_else = "/.strangler-diff-unmatched"
    for method in _METHOD_ORDER:
        seen.setdefault((method, "(anything else)"), everything_else)
    order = {name: index for index, name in enumerate(_METHOD_ORDER)}
    keys = sorted(seen, key=lambda key: (key[1] == "(anything else)", key[1], order[key[0]]))
    return [(method, text, seen[(method, text)]) for method, text in keys]


def _add(seen: dict[tuple[str, str], str], route: Route) -> None:
    text = route.path if route.path is not None else f"{route.prefix} (prefix)"
    for method in sorted(route.methods & HTTP_METHODS):
        seen.setdefault((method, text), route.template.sample())
