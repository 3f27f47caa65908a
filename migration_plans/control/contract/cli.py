"""``strangler contract check CONTEXT``: exit 0 clean, 1 server errors or undeclared
differences, 2 when the check cannot run."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(no_args_is_help=True, help="Differential contract checks against the monolith.")

PG_ENV = "STRANGLER_PG_URL"


@app.command()
def check(
    context: Annotated[str, typer.Argument(help="The bounded context whose service is checked.")],
    examples: Annotated[
        int, typer.Option(min=1, max=10_000, help="Generated requests per operation.")
    ] = 25,
    seed: Annotated[int, typer.Option(help="Same seed, same requests.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    allowances: Annotated[
        Path | None,
        typer.Option(help="YAML file of accepted differences (default: the shipped one)."),
    ] = None,
    pg: Annotated[
        bool,
        typer.Option(
            help=f"Run on PostgreSQL: databases on ${PG_ENV} (default postgres@127.0.0.1:5432)."
        ),
    ] = False,
    pg_url: Annotated[
        str | None,
        typer.Option(help="Run on PostgreSQL: databases on this server (implies --pg)."),
    ] = None,
    operation: Annotated[
        list[str] | None,
        typer.Option(help="Check only this operation ('GET /api/v1/products/'); repeatable."),
    ] = None,
    phase: Annotated[
        str,
        typer.Option(
            help="The service's phase: dual_write (its own database, backfilled) or shared "
            "(reading the monolith's copy; reads only, writes go to the monolith)."
        ),
    ] = "dual_write",
    staff: Annotated[
        bool,
        typer.Option(
            "--staff",
            help="The check's user is staff: views that narrow rows per user show them all, "
            "staff-only writes are allowed.",
        ),
    ] = False,
) -> None:
    """Send generated requests to the monolith and the service; compare what they answer and
    write."""
    # lazy: hypothesis, the reconciler and the process helpers load only for this command
    from migration_plans.control.contract.allowances import load_allowances
    from migration_plans.control.contract.check import check_context
    from migration_plans.control.contract.exceptions import ContractError
    from migration_plans.core.database import pg_admin_url
    from migration_plans.core.phase import Phase
    from migration_plans.core.settings import plan_for, plans_dir
    from migration_plans.core.yamlfile import ConfigError

    err = Console(stderr=True)
    if phase not in (Phase.SHARED.value, Phase.DUAL_WRITE.value):
        err.print(
            f"strangler contract check: --phase {phase!r}: shared or dual_write", markup=False
        )
        raise typer.Exit(2)
    server = pg_url or (pg_admin_url() if pg else None)
    try:
        accepted = load_allowances(allowances)
        plan = plan_for(context)
        report = check_context(
            plan,
            plans_dir(),
            accepted,
            examples=examples,
            seed=seed,
            pg_server=server,
            only=tuple(operation or ()),
            phase=Phase(phase),
            staff=staff,
            progress=None if as_json else lambda message: err.print(message, markup=False),
        )
    except (ConfigError, ContractError) as exc:
        err.print(f"strangler contract check: {exc}", markup=False)
        raise typer.Exit(2) from exc
    if as_json:
        sys.stdout.write(json.dumps(report.as_json(), indent=2) + "\n")
    else:
        report.render(Console())
    raise typer.Exit(0 if report.ok else 1)
