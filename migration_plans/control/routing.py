"""Rewrite a context's routes in the route table for a new phase, keeping everything else.

Only ``contexts.<context>.routes`` changes; the user's other routes, upstreams and
comments survive (ruamel.yaml round trip). The result is validated against the plans
before it replaces the file, so proxies only ever hot-reload a good table.

    text = routes_for_phase(Path("routes.yaml"), plan, Phase.DUAL_WRITE)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from io import StringIO
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.util import load_yaml_guess_indent

from migration_plans.control.phase_rules import PlanPhaseRules
from migration_plans.control.plan_file import atomic_write
from migration_plans.core.http import HTTP_METHODS, SAFE_METHODS
from migration_plans.core.phase import Phase, Side
from migration_plans.core.plan import Endpoint, Plan
from migration_plans.core.yamlfile import ConfigError, ConfigIssue
from strangler_proxy.routetable.loader import parse_table


def _yaml_for(text: str) -> tuple[YAML, Any]:
    """A round-trip YAML keeping the file's quotes and list indentation, and its document."""
    _, sequence_indent, dash_offset = load_yaml_guess_indent(text)
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    offset = dash_offset or 0
    yaml.indent(mapping=2, sequence=max(sequence_indent or 2, offset + 2), offset=offset)
    return yaml, yaml.load(text)


def _methods(route: Mapping[str, Any]) -> set[str]:
    raw = route.get("methods")
    if raw is None:
        return set(HTTP_METHODS)
    names = {str(item).upper() for item in ([raw] if isinstance(raw, str) else raw)}
    return set(HTTP_METHODS) if "*" in names else names


def _targets(route: Mapping[str, Any]) -> set[str]:
    canary = route.get("canary")
    if isinstance(canary, Mapping):
        split = canary.get("split") or {}
        return {str(name) for name, weight in split.items() if float(weight) > 0}
    upstream = route.get("upstream")
    return {str(upstream)} if upstream is not None else set()


def _send_to(route: CommentedMap, upstream: str) -> None:
    if "canary" in route:
        index = list(route).index("canary")
        del route["canary"]
        route.insert(index, "upstream", upstream)
    else:
        route["upstream"] = upstream


def _set_fallback(route: CommentedMap, enabled: bool) -> None:
    if enabled:
        route["fallback"] = True
    elif "fallback" in route:
        del route["fallback"]


def _rewrite_route(route: CommentedMap, plan: Plan, phase: Phase, monolith: str) -> None:
    methods = _methods(route)
    writes = methods - SAFE_METHODS
    service = plan.upstream
    if phase.source_of_truth is Side.SERVICE:
        if _targets(route) != {service}:
            _send_to(route, service)
        _set_fallback(route, False)
        shadow = route.get("shadow")
        if isinstance(shadow, Mapping) and shadow.get("upstream") == service:
            del route["shadow"]
        return
    if writes:
        _send_to(route, service if phase.owns_database else monolith)
    # Reads may fall back to the monolith while its data is current; writes never do.
    current = phase.monolith_is_current and service in _targets(route)
    _set_fallback(route, current and bool(methods & SAFE_METHODS))


def _slug(path: str) -> str:
    words = re.findall(r"[a-z0-9]+", re.sub(r"\{[^}]*\}", "item", path.lower()))
    return "-".join(word for word in words if word not in {"api", "v1"}) or "root"


def _generated_routes(plan: Plan, phase: Phase, monolith: str) -> CommentedSeq:
    routes = CommentedSeq()
    for endpoint in plan.endpoints:
        routes.extend(_endpoint_routes(plan, endpoint, phase, monolith))
    return routes


def _endpoint_routes(plan: Plan, endpoint: Endpoint, phase: Phase, monolith: str) -> list[Any]:
    """Reads stay on the monolith with the service as shadow until split; writes follow."""
    reads = [m for m in endpoint.methods if m in SAFE_METHODS]
    writes = list(endpoint.writes)
    made: list[Any] = []
    for kind, methods in (("reads", reads), ("writes", writes)):
        if not methods:
            continue
        listed = CommentedSeq(methods)
        listed.fa.set_flow_style()
        route = CommentedMap(
            name=f"{plan.context}-{_slug(endpoint.path)}-{kind}",
            path=endpoint.path,
            methods=listed,
            upstream=monolith,
        )
        if kind == "reads":
            shadow = CommentedMap(upstream=plan.upstream, sample_rate=1.0)
            shadow.fa.set_flow_style()
            route["shadow"] = shadow
        _rewrite_route(route, plan, phase, monolith)
        made.append(route)
    return made


def rewrite_text(text: str, plan: Plan, phase: Phase) -> str:
    """``text`` (a route table) with ``plan``'s context routed for ``phase``."""
    yaml, document = _yaml_for(text)
    monolith = str(document.get("default_upstream", "monolith"))
    contexts = document.setdefault("contexts", CommentedMap())
    group = contexts.setdefault(plan.context, CommentedMap())
    routes = group.get("routes")
    if not routes:
        group["routes"] = _generated_routes(plan, phase, monolith)
    else:
        for route in routes:
            _rewrite_route(route, plan, phase, monolith)
    buffer = StringIO()
    yaml.dump(document, buffer)
    return buffer.getvalue()


def render_routes(upstreams: Mapping[str, str | Sequence[str]], plans: Mapping[str, Plan]) -> str:
    """A new route table: ``upstreams`` by name, every plan's context routed for its phase.

    An upstream is one URL (written ``url:``) or its replicas' URLs (``urls:`` when
    there are several).
    """
    lines = [
        "# Route table written by strangler from the migration plans.",
        "# `strangler plan advance` rewrites each context's routes; edit the rest freely.",
        "default_upstream: monolith",
        "upstreams:",
        *(f"  {name}: {{{_where(urls)}}}" for name, urls in upstreams.items()),
        "contexts: {}",
        "",
    ]
    text = "\n".join(lines)
    for plan in plans.values():
        if plan.upstream in upstreams:
            text = rewrite_text(text, plan, plan.phase)
    return text


def _where(urls: str | Sequence[str]) -> str:
    """``url: "..."`` for one URL, ``urls: ["...", ...]`` for several."""
    listed = [urls] if isinstance(urls, str) else list(urls)
    if len(listed) == 1:
        return f'url: "{listed[0]}"'
    return "urls: [" + ", ".join(f'"{url}"' for url in listed) + "]"


def routes_for_phase(route_path: Path, plan: Plan, phase: Phase) -> str:
    """The route table at ``route_path`` with ``plan``'s context routed for ``phase``."""
    return rewrite_text(route_path.read_text(encoding="utf-8"), plan, phase)


def prepare_routes(route_path: Path, plan: Plan, phase: Phase, plans: Mapping[str, Plan]) -> str:
    """The route table rewritten for ``phase``, validated against the plans as they will be.

    Nothing is written; :class:`ConfigError` lists why a rewrite would not validate.
    """
    text = routes_for_phase(route_path, plan, phase)
    future = {**plans, plan.context: plan.model_copy(update={"phase": phase})}
    try:
        parse_table(text, route_path, phase_rules=PlanPhaseRules(future))
    except ConfigError as exc:
        raise ConfigError(
            [
                ConfigIssue(i.path, i.line, i.field, f"after rewrite for {phase}: {i.message}")
                for i in exc.issues
            ]
        ) from exc
    return text


def apply_phase_to_routes(
    route_path: Path, plan: Plan, phase: Phase, plans: Mapping[str, Plan]
) -> str:
    """Rewrite, validate against the plans as they will be, and atomically replace the file.

    Returns the new table's content hash. A table that would not validate is never
    written: :class:`ConfigError` lists why.
    """
    text = prepare_routes(route_path, plan, phase, plans)
    atomic_write(route_path, text)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
