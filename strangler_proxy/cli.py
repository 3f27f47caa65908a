"""`strangler proxy` and `strangler routes` commands, built for a host by :func:`build_cli`.

The host plugs in what the data plane must not import (:class:`Extensions`): the
`strangler` CLI (:mod:`migration_plans.control.cli`) passes the migration plans'
phase rules (``--plans``) and the migration dashboard, mounted under the admin
prefix. :data:`app` and :data:`routes_app` are the bare commands that
``python -m strangler_proxy`` runs: the proxy alone, no plan rules, no dashboard.

    proxy_app, routes_app = build_cli(Extensions(phase_rules=rules_from, admin_mounts={...}))

Heavy imports inside commands stay lazy: the CLI must start fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from strangler_proxy import routetable  # its names load on first use

if TYPE_CHECKING:
    from strangler_proxy.introspection import AdminMount
    from strangler_proxy.routetable import LoadedTable, PhaseRules

__all__ = ["Extensions", "app", "build_cli", "routes_app"]


@dataclass(frozen=True)
class Extensions:
    """What a host CLI plugs into the proxy's commands.

    ``phase_rules`` builds the route table's phase rules from a ``--plans`` folder
    (``serve --plans``, ``routes validate --plans``); without it ``--plans`` is hidden
    and refused. ``admin_mounts`` are the apps ``serve`` mounts under the admin prefix,
    by name (see :mod:`strangler_proxy.introspection`).
    """

    phase_rules: Callable[[Path], PhaseRules] | None = None
    admin_mounts: Mapping[str, AdminMount] = field(default_factory=dict)


def build_cli(extensions: Extensions | None = None) -> tuple[typer.Typer, typer.Typer]:
    """The ``proxy`` and ``routes`` command groups, with ``extensions`` plugged in."""
    ext = extensions or Extensions()
    proxy_app = typer.Typer(no_args_is_help=True, help="The routing proxy.")
    routes = typer.Typer(no_args_is_help=True, help="Route tables: validate, diff, schema.")
    proxy_app.callback()(_proxy)
    proxy_app.command()(_serve_command(ext))
    routes.command()(_validate_command(ext))
    routes.command()(diff)
    routes.command()(schema)
    return proxy_app, routes


def _proxy() -> None:
    """The routing proxy."""


RoutesFile = typer.Argument(..., exists=False, dir_okay=False, help="Route table (YAML).")


def _plans_option(ext: Extensions, help_text: str) -> Path | None:
    return typer.Option(None, "--plans", help=help_text, hidden=ext.phase_rules is None)


def _edge_option(help_text: str) -> Any:
    """A client-connection limit; unset: $STRANGLER_<SETTING> or the default."""
    return typer.Option(None, help=help_text, show_default=False)


def _phase_rules(ext: Extensions, plans: Path | None) -> PhaseRules | None:
    if plans is None:
        return None
    if ext.phase_rules is None:
        typer.echo(
            "--plans needs the migration plans: use `strangler proxy serve` or "
            "`strangler routes validate`",
            err=True,
        )
        raise typer.Exit(2)
    return ext.phase_rules(plans)


def _serve_command(ext: Extensions) -> Callable[..., None]:
    def serve(
        routes: Path = typer.Option(..., "--routes", help="Route table (YAML), hot-reloaded."),
        port: int = typer.Option(8000, help="Port to listen on."),
        host: str = typer.Option("127.0.0.1", help="Address to listen on."),
        admin_prefix: str = typer.Option("/_strangler/", help="Path prefix of the admin API."),
        slashes: str = typer.Option(
            "reject", help="Encoded slashes/backslashes: reject|normalise."
        ),
        allow_double_encoded: bool = typer.Option(
            False,
            "--allow-double-encoded",
            help="Forward %25-encoded dot segments and slashes (%252e%252e, %252f) instead "
            "of answering 400.",
        ),
        max_body: int = typer.Option(10 * 1024 * 1024, help="Max request body in bytes."),
        reload_interval: float = typer.Option(0.5, help="Seconds between route-file checks."),
        max_header_bytes: int | None = _edge_option("Max request head in bytes (431)."),
        max_target_bytes: int | None = _edge_option("Max request-target in bytes (414)."),
        header_timeout: float | None = _edge_option(
            "Seconds for the request head to arrive (from accept, then from its first byte)."
        ),
        body_idle_timeout: float | None = _edge_option(
            "Seconds a request body may pause before the request is cut (408)."
        ),
        idle_timeout: float | None = _edge_option(
            "Seconds a connection serving no request may stay silent."
        ),
        max_connections: int | None = _edge_option(
            "Client connections per worker (default: the fd limit less a reserve)."
        ),
        max_connections_per_client: int | None = _edge_option(
            "Client connections per worker from one address (then 503)."
        ),
        access_log: bool = typer.Option(True, help="JSON access log on stderr."),
        workers: int = typer.Option(1, min=1, help="Worker processes sharing the port."),
        advertise_url: str = typer.Option(
            "", help="This proxy's URL in the replica registry (default http://HOST:PORT)."
        ),
        fence_queue: int = typer.Option(
            1000, help="Writes a worker holds behind a write fence; more get 503 Retry-After."
        ),
        upstream_pool_wait: float | None = typer.Option(
            None,
            help="Seconds a request waits for a pooled upstream connection, then 503 "
            "upstream_busy [default: $STRANGLER_UPSTREAM_POOL_WAIT_SECONDS or 5].",
            show_default=False,
        ),
        upstream_body_idle: float | None = typer.Option(
            None,
            help="Seconds a streamed upload may give nothing before it is cut (408) "
            "[default: $STRANGLER_UPSTREAM_BODY_IDLE_SECONDS or 30].",
            show_default=False,
        ),
        upstream_route_share: float | None = typer.Option(
            None,
            help="Share (0-1] of an upstream's pool one route may hold; beyond it 503 at once "
            "[default: $STRANGLER_UPSTREAM_ROUTE_SHARE or 0.8].",
            show_default=False,
        ),
        dashboard_secure_cookie: bool | None = typer.Option(
            None,
            "--dashboard-secure-cookie/--no-dashboard-secure-cookie",
            help="Mark the dashboard's session cookie Secure: TLS is terminated in front "
            "[default: $STRANGLER_DASHBOARD_SECURE_COOKIE or off].",
            show_default=False,
        ),
        live_phase: bool | None = typer.Option(
            None,
            "--live-phase/--no-live-phase",
            help="Follow the published phase in $STRANGLER_CONTROL_DB_URL, fence writes and "
            "acknowledge each epoch (default on, unless STRANGLER_LIVE_PHASE=off).",
            show_default=False,
        ),
        plans: Path | None = _plans_option(
            ext, "Migration plans folder: phase rules checked at every (re)load."
        ),
    ) -> None:
        """Serve the proxy with uvicorn (uvloop + httptools). SIGHUP reloads the route table.

        The admin bearer token comes from $STRANGLER_ADMIN_TOKEN (admin API off without
        it); the identity signing key from $STRANGLER_IDENTITY_KEY when the table has `auth:`;
        the canary hash secret from $STRANGLER_CANARY_KEY (the same on every replica).
        Each worker follows the published phase of every context and registers as a replica
        in the control database ($STRANGLER_CONTROL_DB_URL): it holds a context's writes
        while the control plane fences them and acknowledges each epoch it serves.
        `strangler proxy serve` also mounts the migration dashboard under the admin prefix
        (each worker serves its own); `python -m strangler_proxy serve` is the bare proxy
        (no dashboard, no --plans).
        """
        # lazy: the proxy and uvicorn load only when a proxy is served (CLI start-up time)
        from pydantic import ValidationError

        from migration_plans.core.yamlfile import ConfigError, format_loc
        from strangler_proxy.config import ProxyConfig
        from strangler_proxy.server import run

        following: dict[str, object] = {} if live_phase is None else {"live_phase": live_phase}
        edge = {
            "max_header_bytes": max_header_bytes,
            "max_target_bytes": max_target_bytes,
            "client_header_timeout_seconds": header_timeout,
            "client_body_idle_seconds": body_idle_timeout,
            "client_idle_seconds": idle_timeout,
            "max_connections": max_connections,
            "max_connections_per_client": max_connections_per_client,
        }
        following.update({name: value for name, value in edge.items() if value is not None})
        try:
            config = ProxyConfig.from_env(
                routes=routes,
                host=host,
                port=port,
                admin_prefix=admin_prefix,
                slashes=slashes,
                reject_double_encoded=not allow_double_encoded,
                max_body_bytes=max_body,
                reload_interval=reload_interval,
                access_log=access_log,
                workers=workers,
                advertise_url=advertise_url,
                fence_queue=fence_queue,
                **following,
                **_given(
                    upstream_pool_wait_seconds=upstream_pool_wait,
                    upstream_body_idle_seconds=upstream_body_idle,
                    upstream_route_share=upstream_route_share,
                    dashboard_secure_cookie=dashboard_secure_cookie,
                ),
            )
        except ValidationError as exc:
            for error in exc.errors():
                typer.echo(f"{format_loc(tuple(error['loc']))}: {error['msg']}", err=True)
            raise typer.Exit(2) from exc
        try:
            run(config, phase_rules=_phase_rules(ext, plans), admin_mounts=ext.admin_mounts)
        except ConfigError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from exc

    return serve


def _given(**values: object) -> dict[str, object]:
    """The options given on the command line (the others come from the environment)."""
    return {name: value for name, value in values.items() if value is not None}


def _load(path: Path, phase_rules: PhaseRules | None = None) -> LoadedTable:
    # lazy: the YAML and pydantic loaders load only when a command reads a table (start-up time)
    from migration_plans.core.yamlfile import ConfigError

    try:
        return routetable.load_table(path, phase_rules)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        issues = len(exc.issues)
        typer.echo(f"{path}: {issues} problem{'s' if issues != 1 else ''}", err=True)
        raise typer.Exit(1) from exc


def _validate_command(ext: Extensions) -> Callable[..., None]:
    def validate(
        path: Path = RoutesFile,
        plans: Path | None = _plans_option(
            ext, "Also check the routes against the migration plans' phases."
        ),
    ) -> None:
        """Validate a route table; exit 1 listing every problem as file:line: field: message."""
        loaded = _load(path, _phase_rules(ext, plans))
        routes = len(loaded.router.routes)
        contexts = len(loaded.table.contexts)
        typer.echo(
            f"{path}: ok: {routes} routes in {contexts} contexts, "
            f"version {loaded.version}, hash {loaded.hash}"
        )

    return validate


def diff(
    old: Path = RoutesFile,
    new: Path = RoutesFile,
    as_json: bool = typer.Option(False, "--json", help="Print the moves as JSON."),
) -> None:
    """Which method+path moves from which upstream to which, and canary weight changes."""
    moves = routetable.diff_tables(_load(old), _load(new))
    if as_json:
        typer.echo(json.dumps([move.as_dict() for move in moves], indent=2))
        return
    if not moves:
        typer.echo("no traffic moves")
    for move in moves:
        typer.echo(str(move))


def schema() -> None:
    """Print the JSON Schema of the route table (for editor completion)."""
    typer.echo(json.dumps(routetable.RouteTable.model_json_schema(), indent=2))


app, routes_app = build_cli()
