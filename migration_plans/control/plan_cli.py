"""`strangler plan` commands: init, status, advance, rollback, history, schema.

Every command that reads plans reads one folder: ``--plans-dir``, else
``STRANGLER_PLANS_DIR``, else ``./plans``; ``strangler plan init`` makes it from the
templates shipped in the package, which are never written.

The control-plane modules are imported inside the commands: they load pydantic,
SQLAlchemy and every store, and ``strangler --help`` should not wait for them.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from migration_plans.control.transitions import Environment

app = typer.Typer(no_args_is_help=True, help="Migration plans: phases, gates, cut-over.")

ContextArg = Annotated[str, typer.Argument(help="Bounded context, e.g. catalog.")]
RoutesOpt = Annotated[
    Path | None,
    typer.Option(
        "--routes", envvar="STRANGLER_ROUTES", help="Route table to rewrite for the new phase."
    ),
]
FenceOpt = Annotated[
    float,
    typer.Option(
        "--fence-timeout",
        min=0.1,
        max=60,
        help="Longest time the context's writes are held at the cut-over (seconds); past "
        "it the transition aborts and they go to the old owner.",
    ),
]
AckOpt = Annotated[
    float,
    typer.Option(
        "--ack-timeout",
        min=0,
        max=3600,
        help="How long to wait for every live replica to acknowledge the current phase "
        "and route table before starting (seconds).",
    ),
]
PlansOpt = Annotated[
    Path | None,
    typer.Option(
        "--plans-dir",
        envvar="STRANGLER_PLANS_DIR",
        help="Folder of plan files (default ./plans; `strangler plan init` makes it).",
    ),
]


@contextmanager
def _reported() -> Iterator[None]:
    """Expected control-plane errors become ``error: ...`` on stderr and exit status 1."""
    # lazy: `strangler` start-up time (the plan models load pydantic and ruamel.yaml)
    from migration_plans.control.exceptions import PlanError
    from migration_plans.core.yamlfile import ConfigError

    try:
        yield
    except (PlanError, ConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def _environment(
    plans_dir: Path | None,
    routes: Path | None,
    *,
    fence_timeout: float | None = None,
    ack_timeout: float | None = None,
) -> Environment:
    # lazy: `strangler` start-up time (transitions loads SQLAlchemy and every store)
    from migration_plans.control.cutover import CutOverSettings
    from migration_plans.control.transitions import Environment

    env = Environment.from_env()
    if plans_dir is not None:
        env.plans_dir = plans_dir
    env.routes_path = routes
    defaults = CutOverSettings()
    env.cutover = CutOverSettings(
        fence_timeout=defaults.fence_timeout if fence_timeout is None else fence_timeout,
        ack_timeout=defaults.ack_timeout if ack_timeout is None else ack_timeout,
    )
    return env


def _print_outcome(outcome: Any) -> None:
    """The steps, the cut-over's fence figures and who was left out."""
    for step, value in outcome.steps.items():
        typer.echo(f"  {step}: {value}")
    cutover = outcome.cutover
    if cutover is not None:
        steps = ", ".join(f"{name} {ms:.0f} ms" for name, ms in cutover.step_ms.items())
        typer.echo(f"  cut-over: writes held {cutover.fence_held_ms:.0f} ms ({steps})")
        typer.echo(f"  epochs: {cutover.epochs}")
        for replica in cutover.left_out:
            typer.echo(f"  LEFT OUT {replica['instance']} ({replica['why']}): {replica['reason']}")
        if not cutover.lift_acknowledged:
            typer.echo("  warning: not every replica acknowledged the lifted fence yet "
                       "(`strangler plan status` lists them)")  # fmt: skip
    if outcome.route_table_hash:
        typer.echo(f"  route table rewritten, hash {outcome.route_table_hash[:12]}")


WHAT_CHANGES = {
    "dual_write": "migrate the service DB, install capture, backfill; writes go to the service",
    "split": "final reconcile; the service becomes the source of truth; no fallback",
}


@app.command()
def init(
    plans_dir: PlansOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite plans that are already there.")
    ] = False,
) -> None:
    """Create the plans folder from the shipped templates (existing plans are kept)."""
    # lazy: `strangler` start-up time (plan_file loads the plan models)
    from migration_plans.control.plan_file import init_plans

    with _reported():
        written, kept = init_plans(plans_dir, overwrite=force)
    for path in written:
        typer.echo(f"wrote {path}")
    for path in kept:
        typer.echo(f"kept {path} (it exists; --force overwrites it)")
    folder = (written or kept)[0].parent.resolve()
    typer.echo(f"export STRANGLER_PLANS_DIR={shlex.quote(str(folder))}")


def _replica_lines(row: dict[str, Any]) -> str:
    """One line per replica: role, address, served epoch and table, and what is wrong."""
    published = row["published"]
    lines = [] if published is None else [f"published epoch {published['epoch']}" + (
        " [yellow]writes fenced[/]" if published["fenced"] else ""
    )]  # fmt: skip
    for replica in row["replicas"]:
        epoch = replica["epochs"].get(row["context"], "-")
        behind = published is not None and epoch != published["epoch"]
        text = f"{replica['role']} {replica['address'] or replica['instance']}: epoch {epoch}"
        if replica["route_hash"]:
            stale = row["route_hash"] and replica["route_hash"] != row["route_hash"]
            text += f", routes {replica['route_hash'][:12]}" + (" [red](old)[/]" if stale else "")
        if replica["nack"]:
            text += (
                f" [red]NACK {replica['nack']['route_hash'][:12]}: {replica['nack']['reason']}[/]"
            )
        if replica["silent"]:
            text += f" [red]silent {replica['heartbeat_age_s']:.0f}s[/]"
        elif behind:
            text += " [yellow](behind)[/]"
        lines.append(text)
    return "\n".join(lines) or "-"


def _print_table(rows: list[dict[str, Any]]) -> None:
    # lazy: `strangler` start-up time
    from rich.console import Console
    from rich.table import Table

    table = Table(title="migration plans")
    for column in (
        "context",
        "phase",
        "next",
        "gates (now vs required)",
        "last transition",
        "replicas: epoch, route table",
    ):
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
            _replica_lines(row),
        )
    Console().print(table)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    routes: RoutesOpt = None,
    plans_dir: PlansOpt = None,
) -> None:
    """Each context's phase, its gates, what the next step changes, and every replica.

    Replicas (proxies, services, relays) are listed with the epoch and route table they
    serve; a silent one, one behind, one on an old table or one that refused a table
    is marked.
    """
    # lazy: `strangler` start-up time
    from migration_plans.control.transitions import plan_status

    with _reported():
        rows = plan_status(_environment(plans_dir, routes))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        _print_table(rows)


@app.command()
def advance(
    context: ContextArg,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Advance although gates fail, leaving out replicas that are silent or do "
            "not acknowledge (recorded).",
        ),
    ] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why (required with --force).")] = "",
    actor: Annotated[str | None, typer.Option("--actor", help="Who (default: $USER).")] = None,
    fence_timeout: FenceOpt = 2.0,
    ack_timeout: AckOpt = 30.0,
    routes: RoutesOpt = None,
    plans_dir: PlansOpt = None,
) -> None:
    """Check the gates, do what the next phase needs, cut over live, record it.

    The cut-over: every live replica acknowledges, the context's writes are held while
    the outboxes drain, plan and route table flip, every replica acknowledges the new
    phase, the held writes go to the new owner. No process restarts.
    """
    # lazy: `strangler` start-up time
    from migration_plans.control import transitions

    with _reported():
        env = _environment(plans_dir, routes, fence_timeout=fence_timeout, ack_timeout=ack_timeout)
        outcome = transitions.advance(env, context, actor=actor, force=force, reason=reason)
    typer.echo(f"{context}: {outcome.from_phase} -> {outcome.to_phase}")
    for result in outcome.gates:
        typer.echo(f"  {result.describe()}")
    _print_outcome(outcome)


@app.command()
def rollback(
    context: ContextArg,
    reason: Annotated[str, typer.Option("--reason", help="Why.")] = "",
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Leave out replicas that are silent or do not acknowledge (needs --reason; "
            "never overrides the data-loss check).",
        ),
    ] = False,
    actor: Annotated[str | None, typer.Option("--actor", help="Who (default: $USER).")] = None,
    fence_timeout: FenceOpt = 2.0,
    ack_timeout: AckOpt = 30.0,
    routes: RoutesOpt = None,
    plans_dir: PlansOpt = None,
) -> None:
    """Move a context back one phase, live (refused when it would lose data)."""
    # lazy: `strangler` start-up time
    from migration_plans.control import transitions

    with _reported():
        env = _environment(plans_dir, routes, fence_timeout=fence_timeout, ack_timeout=ack_timeout)
        outcome = transitions.rollback(env, context, actor=actor, reason=reason, force=force)
    typer.echo(f"{context}: {outcome.from_phase} -> {outcome.to_phase} (rollback)")
    _print_outcome(outcome)


@app.command()
def history(
    context: Annotated[str | None, typer.Argument(help="Only this context.")] = None,
    limit: Annotated[int, typer.Option(help="How many.")] = 20,
) -> None:
    """Recorded transitions, newest first."""
    # lazy: `strangler` start-up time (SQLAlchemy)
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
    # lazy: `strangler` start-up time (pydantic)
    from migration_plans.core.plan import Plan

    typer.echo(json.dumps(Plan.model_json_schema(), indent=2))
