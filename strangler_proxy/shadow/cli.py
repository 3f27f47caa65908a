"""`strangler shadow` commands: report, replay, noise, export-tests.

Imports of the heavier modules stay inside the commands so the CLI starts fast
(Redis, SQLAlchemy, aiohttp and deepdiff are not loaded for other commands).
The results store is the one the environment selects (:mod:`strangler_proxy.shadow.backend`:
Redis when ``STRANGLER_REDIS_URL`` is set, else the control-plane database), under
``STRANGLER_SHADOW_PREFIX``; ``--redis-url`` picks a Redis store.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from migration_plans.core.yamlfile import ConfigError

if TYPE_CHECKING:
    from strangler_proxy.shadow._compare import CompareRules
    from strangler_proxy.shadow.store import ShadowResults

shadow_app = typer.Typer(
    no_args_is_help=True, help="Shadow traffic: reports, offline replay, noise, regression tests."
)

RedisOpt = Annotated[
    str | None,
    typer.Option("--redis-url", help="Redis results store (default: the environment's store)."),
]
PrefixOpt = Annotated[
    str | None, typer.Option("--prefix", help="Key prefix (default STRANGLER_SHADOW_PREFIX).")
]
RouteOpt = Annotated[str | None, typer.Option("--route", "-r", help="Only this route.")]
SinceOpt = Annotated[
    str | None, typer.Option("--since", help="Only results since: 30m, 6h, 2d or ISO 8601.")
]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table, json or html.")]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
]


def _store(redis_url: str | None, prefix: str | None) -> ShadowResults:
    # lazy: CLI start-up (every `strangler` command imports this module)
    from strangler_proxy.shadow.backend import open_store

    return open_store(redis_url, prefix=prefix)


def _since(text: str | None) -> float | None:
    # lazy: CLI start-up (every `strangler` command imports this module)
    from strangler_proxy.shadow.store import parse_since

    try:
        return parse_since(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from exc


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text, nl=not text.endswith("\n"))
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


def _print_report(
    store: ShadowResults, route: str | None, since: float | None, fmt: str, output: Path | None
) -> None:
    # lazy: CLI start-up (every `strangler` command imports this module)
    from strangler_proxy.shadow._report import build_report, render

    if fmt not in ("table", "json", "html"):
        raise typer.BadParameter("use table, json or html", param_hint="--format")
    _emit(render(build_report(store, route=route, since=since), fmt), output)


@shadow_app.command()
def report(
    route: RouteOpt = None,
    since: SinceOpt = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    redis_url: RedisOpt = None,
    prefix: PrefixOpt = None,
) -> None:
    """Match rate per route with counts, top differing fields and example diffs."""
    _print_report(_store(redis_url, prefix), route, _since(since), fmt, output)


def _rules(
    ignore_paths: list[str], ignore_order: bool, tolerance: float, headers: list[str]
) -> CompareRules:
    # lazy: CLI start-up (every `strangler` command imports this module)
    from strangler_proxy.shadow._compare import CompareRules

    return CompareRules(
        ignore_paths=tuple(ignore_paths),
        ignore_order=ignore_order,
        numeric_tolerance=tolerance,
        headers=tuple(headers),
    )


def _table(path: Path) -> Any:
    # lazy: CLI start-up (every `strangler` command imports this module)
    from strangler_proxy.routetable.loader import load_table

    try:
        return load_table(path).table
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc


def _router(path: Path) -> Any:
    # lazy: CLI start-up (every `strangler` command imports this module)
    from strangler_proxy.routing.matcher import Router

    return Router(_table(path))


def _route_rules(path: Path | None) -> dict[str, CompareRules]:
    # lazy: CLI start-up (every `strangler` command imports this module)
    from strangler_proxy.shadow._compare import CompareRules

    if path is None:
        return {}
    table = _table(path)
    return {
        route.name: CompareRules.coerce(route.shadow.compare)
        for _, _, route in table.located_routes()
        if route.shadow is not None
    }


@shadow_app.command()
def replay(
    capture: Annotated[Path, typer.Argument(help="mitmproxy flow file (mitmdump -w) or HAR.")],
    primary: Annotated[str, typer.Option("--primary", help="Base URL of the primary.")],
    candidate: Annotated[str, typer.Option("--candidate", help="Base URL of the candidate.")],
    include_writes: Annotated[
        bool,
        typer.Option(
            "--include-writes", help="Replay POST/PUT/PATCH/DELETE too (disposable upstreams!)."
        ),
    ] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1)] = 8,
    keep_host: Annotated[
        bool,
        typer.Option(
            "--keep-host/--no-keep-host",
            help="Send each request's captured Host to both sides (absolute links compare).",
        ),
    ] = True,
    identity_key: Annotated[
        str | None,
        typer.Option(
            "--identity-key",
            envvar="STRANGLER_IDENTITY_KEY",
            help="Sign X-Strangler-Identity with this key (the proxy's), so writes pass.",
            show_envvar=True,
        ),
    ] = None,
    identity_sub: Annotated[
        str, typer.Option("--identity-sub", help="Subject of the signed identity.")
    ] = "strangler-replay",
    second_primary: Annotated[
        str | None, typer.Option("--second-primary", help="Learn noise from a second primary.")
    ] = None,
    ignore_path: Annotated[
        list[str] | None, typer.Option("--ignore-path", help="deepdiff path, [*] wildcards.")
    ] = None,
    ignore_order: Annotated[bool, typer.Option("--ignore-order")] = False,
    tolerance: Annotated[float, typer.Option("--tolerance", help="Numeric tolerance.")] = 0.0,
    header: Annotated[
        list[str] | None, typer.Option("--header", help="Response header to compare.")
    ] = None,
    context: Annotated[str, typer.Option("--context", help="Label for the results.")] = "replay",
    routes: Annotated[
        Path | None,
        typer.Option("--routes", help="Route table: name results by route, use its shadow rules."),
    ] = None,
    store_results: Annotated[
        bool, typer.Option("--store", help="Also record the results in the Redis store.")
    ] = False,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    redis_url: RedisOpt = None,
    prefix: PrefixOpt = None,
) -> None:
    """Replay a capture against two upstreams and report the differences."""
    # lazy: CLI start-up (every `strangler` command imports this module)
    from migration_plans.core.identity import Identity
    from strangler_proxy.shadow._captures import CaptureError, read_capture
    from strangler_proxy.shadow._replay import ReplayOptions
    from strangler_proxy.shadow._replay import replay as run_replay
    from strangler_proxy.shadow.store import MemoryShadowStore

    store: ShadowResults = (
        _store(redis_url, prefix) if store_results else MemoryShadowStore(max_samples=20)
    )
    options = ReplayOptions(
        concurrency=concurrency,
        include_writes=include_writes,
        keep_host=keep_host,
        identity_key=identity_key.encode() if identity_key else None,
        identity=Identity(sub=identity_sub, name=identity_sub),
        rules=_rules(ignore_path or [], ignore_order, tolerance, header or []),
        context=context,
        routes=_router(routes) if routes else None,
    )
    try:
        summary = asyncio.run(
            run_replay(
                read_capture(capture),
                primary=primary,
                candidate=candidate,
                store=store,
                options=options,
                second_primary=second_primary,
            )
        )
    except CaptureError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"replayed: {summary.to_dict()}", err=True)
    _print_report(store, None, None, fmt, output)


@shadow_app.command()
def noise(redis_url: RedisOpt = None, prefix: PrefixOpt = None) -> None:
    """Print the learned noise as YAML to paste into the route table."""
    # lazy: CLI start-up (every `strangler` command imports this module)
    from strangler_proxy.shadow._noise import noise_yaml

    store = _store(redis_url, prefix)
    typer.echo(noise_yaml(store.noise(), contexts=store.routes()), nl=False)


@shadow_app.command("export-tests")
def export_tests_command(
    out: Annotated[Path, typer.Option("--out", help="The pytest file to write.")],
    target: Annotated[
        str, typer.Option("--target", help="Default SHADOW_TARGET_URL in the file.")
    ] = "http://127.0.0.1:8101",
    route: RouteOpt = None,
    since: SinceOpt = None,
    routes: Annotated[
        Path | None, typer.Option("--routes", help="Route table whose shadow rules to apply.")
    ] = None,
    redis_url: RedisOpt = None,
    prefix: PrefixOpt = None,
) -> None:
    """Write stored mismatches as pytest regression cases (fail until the service matches)."""
    # lazy: CLI start-up (every `strangler` command imports this module)
    from strangler_proxy.shadow._export_tests import export_tests

    text, count = export_tests(
        _store(redis_url, prefix),
        route=route,
        since=_since(since),
        rules=_route_rules(routes),
        target=target,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {count} case(s) to {out}", err=True)
