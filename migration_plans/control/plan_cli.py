"""`strangler plan` commands: status, advance, rollback, history, schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(no_args_is_help=True, help="Migration plans: phases, gates, cut-over.")

ContextArg = Annotated[str, typer.Argument(help="Bounded context, e.g. catalog.")]
RoutesOpt = Annotated[
    Path | None,
    typer.Option(
        "--routes", envvar="STRANGLER_ROUTES", help="Route table to rewrite for the new phase."
    ),
]
PlansOpt = Annotated[
    Path | None,
    typer.Option("--plans-dir", envvar="STRANGLER_PLANS_DIR", help="Folder of plan files."),
]


def _environment(plans_dir: Path | None, routes: Path | None, *, run_steps: bool = True) -> Any:
    from migration_plans.control.transitions import Environment

    env = Environment.from_env()
    if plans_dir is not None:
        env.plans_dir = plans_dir
    env.routes_path = routes
    env.run_steps = run_steps
    return env


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


def _status_rows(env: Any) -> list[dict[str, Any]]:
    from migration_plans.control.exceptions import NoTransition
    from migration_plans.control.history import last_transition
    from migration_plans.control.transitions import check_gates

    rows = []
    for context, plan in sorted(env.plans().items()):
        row: dict[str, Any] = {"context": context, "phase": plan.phase.value, "next": None}
        try:
            target, results = check_gates(env, plan)
            row["next"] = target.value
            row["gates"] = [result.as_dict() for result in results]
            row["ready"] = all(result.passed for result in results)
        except NoTransition:
            row["gates"], row["ready"] = [], False
        last = last_transition(env.engine(), context)
        row["last_transition"] = (
            None
            if last is None
            else {"to": last.to_phase, "by": last.actor, "at": last.at.isoformat()}
        )
        rows.append(row)
    return rows


WHAT_CHANGES = {
    "dual_write": "migrate the service DB, install capture, backfill; writes go to the service",
    "split": "final reconcile; the service becomes the source of truth; no fallback",
}


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    plans_dir: PlansOpt = None,
) -> None:
    """Each context's phase, its gates now vs required, and what the next step changes."""
    from rich.console import Console
    from rich.table import Table

    from migration_plans.core.yamlfile import ConfigError

    try:
        rows = _status_rows(_environment(plans_dir, None))
    except ConfigError as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="migration plans")
    for column in ("context", "phase", "next", "gates (now vs required)", "last transition"):
        table.add_column(column)
    for row in rows:
        gates = "\n".join(
            f"{'[green]pass[/]' if g['passed'] else '[red]FAIL[/]'} {g['gate']} "
            f"(now {'unknown' if g['value'] is None else format(g['value'], 'g')})"
            for g in row["gates"]
        )
        nxt = row["next"] or "-"
        if row["next"]:
            nxt += f"\n[dim]{WHAT_CHANGES[row['next']]}[/]"
        last = row["last_transition"]
        table.add_row(
            row["context"],
            row["phase"],
            nxt,
            gates or "-",
            "-" if last is None else f"-> {last['to']} by {last['by']}\n{last['at']}",
        )
    Console().print(table)


@app.command()
def advance(
    context: ContextArg,
    force: Annotated[bool, typer.Option("--force", help="Advance although gates fail.")] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why (required with --force).")] = "",
    actor: Annotated[str | None, typer.Option("--actor", help="Who (default: $USER).")] = None,
    routes: RoutesOpt = None,
    plans_dir: PlansOpt = None,
) -> None:
    """Check the gates, do what the next phase needs, rewrite the routes, record it."""
    from migration_plans.control.exceptions import PlanError
    from migration_plans.control.transitions import advance as do_advance
    from migration_plans.core.yamlfile import ConfigError

    try:
        outcome = do_advance(
            _environment(plans_dir, routes), context, actor=actor, force=force, reason=reason
        )
    except (PlanError, ConfigError) as exc:
        raise _fail(exc) from exc
    typer.echo(f"{context}: {outcome.from_phase} -> {outcome.to_phase}")
    for result in outcome.gates:
        typer.echo(f"  {result.describe()}")
    for step, value in outcome.steps.items():
        typer.echo(f"  {step}: {value}")
    if outcome.route_table_hash:
        typer.echo(f"  route table rewritten, hash {outcome.route_table_hash}")


@app.command()
def rollback(
    context: ContextArg,
    reason: Annotated[str, typer.Option("--reason", help="Why.")] = "",
    actor: Annotated[str | None, typer.Option("--actor", help="Who (default: $USER).")] = None,
    routes: RoutesOpt = None,
    plans_dir: PlansOpt = None,
) -> None:
    """Move a context back one phase (refused when it would lose data)."""
    from migration_plans.control.exceptions import PlanError
    from migration_plans.control.transitions import rollback as do_rollback
    from migration_plans.core.yamlfile import ConfigError

    try:
        outcome = do_rollback(_environment(plans_dir, routes), context, actor=actor, reason=reason)
    except (PlanError, ConfigError) as exc:
        raise _fail(exc) from exc
    typer.echo(f"{context}: {outcome.from_phase} -> {outcome.to_phase} (rollback)")
    if outcome.route_table_hash:
        typer.echo(f"  route table rewritten, hash {outcome.route_table_hash}")


@app.command()
def history(
    context: Annotated[str | None, typer.Argument(help="Only this context.")] = None,
    limit: Annotated[int, typer.Option(help="How many.")] = 20,
) -> None:
    """Recorded transitions, newest first."""
    from migration_plans.control.history import transitions
    from migration_plans.core.control_db import control_engine

    for t in transitions(control_engine(), context, limit=limit):
        forced = f" FORCED ({t.reason})" if t.forced else (f" ({t.reason})" if t.reason else "")
        typer.echo(
            f"{t.at.isoformat()} {t.context}: {t.from_phase} -> {t.to_phase} by {t.actor}"
            f"{forced} routes={t.route_table_hash or '-'}"
        )


@app.command()
def schema() -> None:
    """Print the JSON Schema of plan files (for editor completion)."""
    from migration_plans.core.plan import Plan

    typer.echo(json.dumps(Plan.model_json_schema(), indent=2))
