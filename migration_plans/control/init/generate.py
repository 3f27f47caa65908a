"""One ``strangler init`` run: inspect, write the plan, the routes and the service package.

    result = run_init(InitRequest(context="shipping", app_label="shipping", out=Path("svc")))
    result.plan_path, result.package_dir, result.routes

The plan is validated (:func:`migration_plans.core.plan.load_plan`, then with the other
plans of the folder for references) before anything is written.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from migration_plans.control.init.django_models import inspect_models, setup_django
from migration_plans.control.init.django_routes import inspect_resources
from migration_plans.control.init.errors import InitError
from migration_plans.control.init.plan_writer import plan_text
from migration_plans.control.init.routes_writer import routes_text
from migration_plans.control.init.skeleton import package_name, write_skeleton
from migration_plans.control.init.spec import ContextSpec
from migration_plans.core.plan import Plan, load_plan, load_plans
from migration_plans.core.settings import plan_path, service_port
from migration_plans.core.yamlfile import ConfigError


@dataclass(frozen=True)
class InitRequest:
    """What to generate, from where, into where."""

    context: str
    app_label: str
    out: Path
    plans_dir: Path
    models: tuple[str, ...] = ()
    settings: str | None = None
    urlconf: str | None = None
    skip_unmappable: bool = False
    force: bool = False
    plan_only: bool = False


@dataclass
class InitResult:
    """What was written, and what the generator left for a human."""

    spec: ContextSpec
    plan: Plan
    plan_path: Path
    package_dir: Path | None
    routes_path: Path
    routes: str
    notes: list[str] = field(default_factory=list)


def inspect_context(request: InitRequest) -> ContextSpec:
    """Django's view of the app as a :class:`ContextSpec` (sets Django up)."""
    setup_django(request.settings)
    models, notes = inspect_models(
        request.app_label, request.models, skip_unmappable=request.skip_unmappable
    )
    resources, route_notes = inspect_resources(
        models, request.urlconf, skip_unmappable=request.skip_unmappable
    )
    return ContextSpec(
        context=request.context,
        app_label=request.app_label,
        models=models,
        resources=resources,
        notes=(*notes, *route_notes),
    )


def _validated(text: str, request: InitRequest) -> Plan:
    """``text`` parsed as a plan, alone and beside the folder's other plans."""
    request.plans_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="strangler-init-") as scratch:
        folder = Path(scratch)
        for other in request.plans_dir.glob("*.yaml"):
            if other.stem != request.context:
                (folder / other.name).write_text(other.read_text(encoding="utf-8"), "utf-8")
        candidate = folder / f"{request.context}.yaml"
        candidate.write_text(text, encoding="utf-8")
        try:
            plan = load_plan(candidate)
            load_plans(folder)
        except ConfigError as exc:
            raise InitError(f"the generated plan does not validate (a bug in init): {exc}") from exc
    return plan


def _other_plans(request: InitRequest) -> dict[str, Plan]:
    if not request.plans_dir.is_dir():
        return {}
    try:
        plans = load_plans(request.plans_dir)
    except ConfigError as exc:
        raise InitError(f"the plans in {request.plans_dir} do not validate: {exc}") from exc
    return {context: plan for context, plan in plans.items() if context != request.context}


def _refuse_owned_tables(spec: ContextSpec, plans: dict[str, Plan], plans_dir: Path) -> None:
    """A monolith table belongs to one context: a model another plan already maps is refused."""
    for model in spec.models:
        for context, plan in sorted(plans.items()):
            for table in plan.tables:
                if table.monolith_table == model.db_table:
                    raise InitError(
                        f"{model.label}: its table {model.db_table} is pair {table.name!r} of "
                        f"context {context!r} ({plan_path(context, plans_dir)}); a table belongs "
                        f"to one context: leave the model out (--models), or generate context "
                        f"{context!r} itself (--force replaces its plan)"
                    )


def _service_url(plan: Plan) -> str:
    context = plan.context
    return f"http://127.0.0.1:{service_port(context, plan.port)}"


def run_init(request: InitRequest) -> InitResult:
    """Inspect, validate, then write plan, package and routes (nothing is written on error)."""
    destination = plan_path(request.context, request.plans_dir)
    if destination.exists() and not request.force:
        raise InitError(f"{destination} exists (--force overwrites it)")
    spec = inspect_context(request)
    module = package_name(request.context)
    source = f"app {request.app_label!r} of {os.environ.get('DJANGO_SETTINGS_MODULE', '')}"
    others = _other_plans(request)
    _refuse_owned_tables(spec, others, request.plans_dir)
    text = plan_text(spec, plans=others, module=module, source=source)
    plan = _validated(text, request)
    package: Path | None = None
    if not request.plan_only:
        package = write_skeleton(
            request.out, spec, module=module, source=source, overwrite=request.force
        )
    destination.write_text(text, encoding="utf-8")
    routes = routes_text(plan, url=_service_url(plan))
    if package is None:  # beside the packages it would have gone with, never in the plans
        request.out.mkdir(parents=True, exist_ok=True)
        routes_path = request.out / f"{request.context}.routes.yaml"
    else:
        routes_path = package / "routes.yaml"
    routes_path.write_text(routes, encoding="utf-8")
    return InitResult(
        spec=spec,
        plan=plan,
        plan_path=destination,
        package_dir=package,
        routes_path=routes_path,
        routes=routes,
        notes=list(spec.notes)
        + [f"left on the monolith: {item}" for r in spec.resources for item in r.left_to_monolith],
    )
