"""``strangler init CONTEXT --app APP_LABEL``: plan, routes and service package from Django.

Exit 0 when everything was written, 1 when something cannot be mapped (the message names
each model or field and what to write by hand), 2 for a bad invocation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def init(
    context: Annotated[str, typer.Argument(help="Name of the new bounded context, e.g. shipping.")],
    app: Annotated[str, typer.Option("--app", help="Django app label to inspect.")],
    models: Annotated[
        str | None,
        typer.Option("--models", help="Comma-separated model names (default: every model)."),
    ] = None,
    out: Annotated[
        Path,
        typer.Option(help="Folder the service package <context>_service/ is written into."),
    ] = Path("services"),
    plans_dir: Annotated[
        Path | None,
        typer.Option(
            "--plans-dir",
            envvar="STRANGLER_PLANS_DIR",
            help="Plans folder the plan is written into (default ./plans).",
        ),
    ] = None,
    settings: Annotated[
        str | None,
        typer.Option(
            "--settings",
            help="Django settings module (default $DJANGO_SETTINGS_MODULE, else "
            "legacy_monolith.settings).",
        ),
    ] = None,
    skip_unmappable: Annotated[
        bool,
        typer.Option(
            "--skip-unmappable",
            help="Leave out what cannot be mapped (noted in the plan) instead of refusing.",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing plan and package.")
    ] = False,
    plan_only: Annotated[
        bool,
        typer.Option(
            "--plan-only",
            help="Write the plan and the route entries, no service package (a service you "
            "write by hand).",
        ),
    ] = False,
) -> None:
    """Write a plan, route-table entries and a FastAPI service package for a Django app."""
    # lazy: Django, SQLAlchemy and the plan models load only for this command
    from migration_plans.control.init.errors import InitError
    from migration_plans.control.init.generate import InitRequest, run_init
    from migration_plans.core.settings import DEFAULT_PLANS_DIR

    names = tuple(name.strip() for name in (models or "").split(",") if name.strip())
    request = InitRequest(
        context=context,
        app_label=app,
        out=out,
        plans_dir=plans_dir or DEFAULT_PLANS_DIR,
        models=names,
        settings=settings,
        skip_unmappable=skip_unmappable,
        force=force,
        plan_only=plan_only,
    )
    try:
        result = run_init(request)
    except InitError as exc:
        typer.echo(f"strangler init: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"plan:    {result.plan_path}")
    if result.package_dir is not None:
        typer.echo(f"service: {result.package_dir} (module {result.package_dir.name})")
    typer.echo(f"routes:  {result.routes_path}")
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo("")
    typer.echo(result.routes, nl=False)
