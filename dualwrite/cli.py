"""`strangler dualwrite` commands. Heavy imports stay inside commands: the CLI must start fast."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from migration_plans.core.logs import configure_json_logging

if TYPE_CHECKING:
    from dualwrite.config import RelaySettings
    from dualwrite.relay import Relay

app = typer.Typer(no_args_is_help=True, help="Dual-write: outbox relay, backfill, status.")

ContextArg = Annotated[str, typer.Argument(help="Bounded context, e.g. catalog.")]


def _settings(context: str) -> RelaySettings:
    # lazy: settings load the plan models (pydantic, ~0.1 s); `strangler --help` must start fast
    from dualwrite.config import RelaySettings

    return RelaySettings.from_env(context)


def _relay(context: str) -> Relay:
    # lazy: the relay pulls in SQLAlchemy and psycopg; `strangler --help` must start fast
    from dualwrite.relay import Relay

    return Relay(_settings(context))


def _contexts(contexts: list[str] | None) -> list[str]:
    if contexts:
        return contexts
    # lazy: the plan models load pydantic (~0.1 s); `strangler --help` must start fast
    from migration_plans.core.plan import load_plans
    from migration_plans.core.settings import plans_dir

    return sorted(load_plans(plans_dir()))


@app.command()
def status(
    contexts: Annotated[list[str] | None, typer.Argument(help="Contexts (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Pending, in-flight and dead-lettered events, relay lag p50/p99, backfill checkpoint."""
    from rich.console import Console
    from rich.table import Table

    # lazy: the status queries pull in the relay; the CLI must start fast
    from dualwrite.status import collect_status

    reports = []
    for context in _contexts(contexts):
        relay = _relay(context)
        try:
            reports.append(collect_status(relay))
        finally:
            relay.close()
    if as_json:
        typer.echo(json.dumps([report.as_dict() for report in reports], default=str, indent=2))
        return
    table = Table(title="dual-write")
    for column in (
        "context",
        "phase",
        "outbox",
        "pending",
        "in flight",
        "dead",
        "lag p50",
        "lag p99",
    ):
        table.add_column(column)
    for report in reports:
        for side in (report.monolith, report.service):

            def ms(value: float | None) -> str:
                return "-" if value is None else f"{value:.1f} ms"

            table.add_row(
                report.context,
                report.phase,
                side.side if side.reachable else f"{side.side} (unreachable)",
                str(side.pending),
                str(side.in_flight),
                str(side.dead),
                ms(side.lag_p50_ms),
                ms(side.lag_p99_ms),
            )
    console = Console()
    console.print(table)
    for report in reports:
        for side in (report.monolith, report.service):
            for key in side.blocked:
                console.print(
                    f"blocked {report.context} {key.aggregate_type}/{key.aggregate_key} "
                    f"({side.side} outbox): event {key.event} {key.status} after "
                    f"{key.attempts} attempt(s), {key.waiting} later event(s) wait: {key.reason}",
                    markup=False,
                )
        for row in report.backfill:
            state = "done" if row["finished_at"] else "in progress"
            console.print(
                f"backfill {report.context}.{row['table_name']}: {state}, "
                f"{row['rows_copied']}/{row['total_rows']} rows, last key {row['last_key']}, "
                f"checkpoint {row['updated_at']}"
            )


@app.command()
def relay(
    context: ContextArg,
    mode: Annotated[
        str, typer.Option(help="inline: apply here; celery: hand keys to workers.")
    ] = "inline",
    metrics_port: Annotated[
        int, typer.Option(help="Serve Prometheus /metrics (0: off); partition I uses port + I.")
    ] = 0,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "INFO",
    partitions: Annotated[
        int | None,
        typer.Option(
            help="Relay workers, each owning a share of the keys (PostgreSQL only; "
            "default CONTEXT_RELAY_PARTITIONS or 1). Inline: one process per partition; "
            "celery: batches of each partition are spread over the workers."
        ),
    ] = None,
    partition: Annotated[
        int | None,
        typer.Option(help="Run only this partition (0-based) of --partitions, e.g. one per host."),
    ] = None,
) -> None:
    """Run the relay loop of CONTEXT until SIGTERM/SIGINT.

    It follows CONTEXT's published phase (no restart at a transition) unless
    CONTEXT_PHASE or STRANGLER_PHASE pins it or STRANGLER_LIVE_PHASE=off.
    """
    import signal
    import sys
    import threading
    from dataclasses import replace

    from prometheus_client import start_http_server

    # lazy: the loop pulls in the relay and psycopg; the CLI must start fast
    from dualwrite.gc_tuning import tune_for_batches
    from dualwrite.live import follows_published_phase
    from dualwrite.loop import RelayLoop
    from dualwrite.partitioned import PartitionedRelay
    from dualwrite.partitions import Partition, PartitionError
    from dualwrite.relay import Relay
    from dualwrite.shapes import check_id_map_partitions
    from migration_plans.core.control_db import control_db_url
    from migration_plans.core.settings import mapping_for

    configure_json_logging(["dualwrite"], level=log_level)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    settings = _settings(context)
    count = settings.partition.count if partitions is None else partitions
    try:
        chosen = Partition(index=partition or 0, count=count)
        settings = replace(settings, partition=chosen)
        settings.check_partition()
        check_id_map_partitions(mapping_for(context), chosen)
    except PartitionError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if count > 1 and partition is None and mode == "inline":

        def argv_for(index: int) -> list[str]:
            port = metrics_port + index if metrics_port else 0
            return [
                *(sys.executable, "-m", "dualwrite", "relay", context, "--mode", mode),
                *("--log-level", log_level, "--metrics-port", str(port)),
                *("--partitions", str(count), "--partition", str(index)),
            ]

        raise typer.Exit(PartitionedRelay(argv_for, count).run(stop))
    spread = 1
    if mode == "celery":  # the loop hands batches out; it owns no partition itself
        spread, settings = count, replace(settings, partition=Partition())
    if metrics_port:
        start_http_server(metrics_port, addr="127.0.0.1")
    worker = Relay(settings)
    tune_for_batches()
    try:
        phase_url = control_db_url() if follows_published_phase(context) else None
        RelayLoop(worker, mode=mode, phase_url=phase_url, spread=spread).run(stop)
    finally:
        worker.close()


@app.command()
def backfill(
    context: ContextArg,
    chunk_size: Annotated[int, typer.Option(help="Rows per chunk (and per checkpoint).")] = 20_000,
    throttle: Annotated[float, typer.Option(help="Seconds to pause between chunks.")] = 0.0,
    id_headroom: Annotated[
        int, typer.Option(help="Service id sequences start this far past the monolith's max id.")
    ] = 1_000_000,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
    max_chunks: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Copy CONTEXT's existing monolith rows into the service database (resumable)."""
    # lazy: the backfill pulls in SQLAlchemy and the relay; the CLI must start fast
    from dualwrite.backfill import Backfill

    configure_json_logging(["dualwrite"], level="WARNING")
    job = Backfill(
        _settings(context),
        chunk_size=chunk_size,
        throttle=throttle,
        id_headroom=id_headroom,
    )
    try:
        result = job.run(progress=progress, max_chunks=max_chunks)
    finally:
        job.close()
    verdict = "done" if result.finished else "stopped (resume by running it again)"
    typer.echo(
        f"backfill {context}: {verdict}; {result.total} rows in {result.seconds:.1f}s "
        f"({result.rows_per_second:,.0f} rows/s)"
    )


@app.command("retry-dead")
def retry_dead(context: ContextArg) -> None:
    """Put CONTEXT's dead-lettered events back in the queue."""
    # lazy: the relay's settings load pydantic (~0.1 s); `strangler --help` must start fast
    from dualwrite.config import Direction

    worker = _relay(context)
    try:
        total = sum(worker.requeue_dead(direction) for direction in Direction)
    finally:
        worker.close()
    typer.echo(f"{context}: {total} dead-lettered events back to pending")


@app.command()
def prune(
    context: ContextArg,
    older_than: Annotated[
        str, typer.Option(help="Keep relayed events younger than this: 30m, 12h, 7d.")
    ] = "7d",
    batch_size: Annotated[
        int, typer.Option(min=1, help="Events deleted per transaction.")
    ] = 10_000,
) -> None:
    """Delete CONTEXT's relayed events older than --older-than from both outboxes.

    Pending, in-flight and dead-lettered events stay; so does each outbox's newest event.
    """
    # lazy: pruning pulls in the relay; the CLI must start fast
    from dualwrite.prune import parse_retention, prune_outboxes

    try:
        retention = parse_retention(older_than)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--older-than") from exc
    worker = _relay(context)
    try:
        deleted = prune_outboxes(worker, older_than=retention, batch_size=batch_size)
    finally:
        worker.close()
    counts = ", ".join(f"{side} {count}" for side, count in deleted.items())
    typer.echo(f"{context}: pruned relayed events older than {older_than} ({counts})")


@app.command()
def capture(
    context: ContextArg,
    on: Annotated[bool, typer.Option("--on/--off", help="Switch capture on or off.")] = True,
) -> None:
    """Switch the monolith's change capture of CONTEXT on or off."""
    # lazy: capture pulls in SQLAlchemy; the CLI must start fast
    from dualwrite.capture import set_capture

    worker = _relay(context)
    try:
        set_capture(worker.engines["monolith"], context, enabled=on)
    finally:
        worker.close()
    typer.echo(f"{context}: capture {'on' if on else 'off'}")


@app.command("install-capture")
def install_capture(contexts: Annotated[list[str], typer.Argument(help="Contexts.")]) -> None:
    """(Re)install the capture triggers of CONTEXTS on the monolith (idempotent)."""
    # lazy: capture pulls in SQLAlchemy; the CLI must start fast
    from dualwrite.capture import install_capture as install
    from migration_plans.core.settings import mapping_for

    worker = _relay(contexts[0])
    try:
        install(worker.engines["monolith"], [mapping_for(context) for context in contexts])
    finally:
        worker.close()
    typer.echo(f"capture triggers installed for {', '.join(contexts)}")


@app.command()
def worker(
    queue: Annotated[
        str | None, typer.Option(help="Queue (default STRANGLER_RELAY_QUEUE).")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Worker processes (1: solo pool).")] = 1,
) -> None:
    """Run a Celery worker for the relay's retries."""
    # lazy: Celery, and its app is configured (var/ folders made) at import
    from dualwrite.celery_app import app as celery_app
    from dualwrite.celery_app import queue_name

    configure_json_logging(["dualwrite"], level="INFO")
    argv = ["worker", "-Q", queue or queue_name(), "--loglevel", "INFO"]
    argv += ["--pool", "solo"] if concurrency == 1 else ["--concurrency", str(concurrency)]
    celery_app.worker_main(argv)
