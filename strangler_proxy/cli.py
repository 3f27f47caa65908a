"""`strangler proxy` and `strangler routes` commands.

Imports inside commands stay lazy: the CLI must start fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from strangler_proxy.routetable.validation import PhaseRules

app = typer.Typer(no_args_is_help=True, help="The routing proxy.")
routes_app = typer.Typer(no_args_is_help=True, help="Route tables: validate, diff, schema.")


@app.callback()
def _proxy() -> None:
    """The routing proxy."""


RoutesFile = typer.Argument(..., exists=False, dir_okay=False, help="Route table (YAML).")


@app.command()
def serve(
    routes: Path = typer.Option(..., "--routes", help="Route table (YAML), hot-reloaded."),
    port: int = typer.Option(8000, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    admin_prefix: str = typer.Option("/_strangler/", help="Path prefix of the admin API."),
    slashes: str = typer.Option("reject", help="Encoded slashes/backslashes: reject|normalise."),
    max_body: int = typer.Option(10 * 1024 * 1024, help="Max request body in bytes."),
    reload_interval: float = typer.Option(0.5, help="Seconds between route-file checks."),
    access_log: bool = typer.Option(True, help="JSON access log on stderr."),
    workers: int = typer.Option(1, min=1, help="Worker processes sharing the port."),
    plans: Path | None = typer.Option(
        None, help="Migration plans folder: phase rules checked at every (re)load."
    ),
) -> None:
    """Serve the proxy with uvicorn (uvloop + httptools). SIGHUP reloads the route table.

    The admin bearer token comes from $STRANGLER_ADMIN_TOKEN (admin API off without
    it); the identity signing key from $STRANGLER_IDENTITY_KEY when the table has `auth:`.
    """
    from pydantic import ValidationError

    from migration_plans.core.yamlfile import ConfigError, format_loc
    from strangler_proxy.config import ProxyConfig
    from strangler_proxy.server import run

    try:
        config = ProxyConfig.from_env(
            routes=routes,
            host=host,
            port=port,
            admin_prefix=admin_prefix,
            slashes=slashes,
            max_body_bytes=max_body,
            reload_interval=reload_interval,
            access_log=access_log,
            workers=workers,
        )
    except ValidationError as exc:
        for error in exc.errors():
            typer.echo(f"{format_loc(tuple(error['loc']))}: {error['msg']}", err=True)
        raise typer.Exit(2) from exc
    try:
        run(config, phase_rules=_phase_rules(plans))
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc


def _phase_rules(plans: Path | None) -> PhaseRules | None:
    if plans is None:
        return None
    from migration_plans.control.phase_rules import PlansOnDisk

    return PlansOnDisk(plans)


def _load(path: Path, plans: Path | None = None) -> object:
    from migration_plans.core.yamlfile import ConfigError
    from strangler_proxy.routetable.loader import load_table

    try:
        return load_table(path, _phase_rules(plans))
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        issues = len(exc.issues)
        typer.echo(f"{path}: {issues} problem{'s' if issues != 1 else ''}", err=True)
        raise typer.Exit(1) from exc


@routes_app.command()
def validate(
    path: Path = RoutesFile,
    plans: Path | None = typer.Option(
        None, help="Also check the routes against the migration plans' phases."
    ),
) -> None:
    """Validate a route table; exit 1 listing every problem as file:line: field: message."""
    from strangler_proxy.routetable.loader import LoadedTable

    loaded = _load(path, plans)
    assert isinstance(loaded, LoadedTable)
    routes = len(loaded.router.routes)
    contexts = len(loaded.table.contexts)
    typer.echo(
        f"{path}: ok: {routes} routes in {contexts} contexts, "
        f"version {loaded.version}, hash {loaded.hash}"
    )


@routes_app.command()
def diff(
    old: Path = RoutesFile,
    new: Path = RoutesFile,
    as_json: bool = typer.Option(False, "--json", help="Print the moves as JSON."),
) -> None:
    """Which method+path moves from which upstream to which, and canary weight changes."""
    from strangler_proxy.routetable.diff import diff_tables
    from strangler_proxy.routetable.loader import LoadedTable

    before, after = _load(old), _load(new)
    assert isinstance(before, LoadedTable) and isinstance(after, LoadedTable)
    moves = diff_tables(before, after)
    if as_json:
        typer.echo(json.dumps([move.as_dict() for move in moves], indent=2))
        return
    if not moves:
        typer.echo("no traffic moves")
    for move in moves:
        typer.echo(str(move))


@routes_app.command()
def schema() -> None:
    """Print the JSON Schema of the route table (for editor completion)."""
    from strangler_proxy.routetable.model import RouteTable

    typer.echo(json.dumps(RouteTable.model_json_schema(), indent=2))
