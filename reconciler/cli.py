"""`strangler reconcile` commands. Heavy imports stay inside commands: the CLI must start fast.

    strangler reconcile catalog [--table products] [--repair [--dry-run]] [--format json]
    strangler reconcile catalog --incremental   # only keys with outbox events since the last clean run
    strangler reconcile history [catalog]
    strangler reconcile references inventory [--format json]

The first word is a context unless it names a subcommand (``history``, ``references``), so
``strangler reconcile catalog`` runs a reconcile without a ``run`` keyword.
Exit status: 0 clean, 1 divergent, 2 error (bad input, database unreachable, a table
that could not be compared).
"""

from __future__ import annotations

import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from reconciler.exceptions import ReconcileError
from reconciler.limits import MAX_PARALLEL_WORKERS

if TYPE_CHECKING:
    from reconciler.config import Target
    from reconciler.report import Report
    from reconciler.runner import Progress


class ContextFirstGroup(TyperGroup):
    """Treats an unknown first word as the context of the default ``run`` command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=ContextFirstGroup,
    no_args_is_help=True,
    help="Reconcile a context's monolith and service databases "
    "(strangler reconcile CONTEXT \\[OPTIONS] | strangler reconcile history).",
)


class Format(StrEnum):
    table = "table"
    json = "json"
    html = "html"


class ExecutorChoice(StrEnum):
    local = "local"
    celery = "celery"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _progress_bar() -> tuple[Any, Any]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as RichProgress

    bar = RichProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("ranges  {task.fields[rate]} rows/s"),
        TimeRemainingColumn(),
        transient=True,
        console=_console(stderr=True),
    )
    tasks: dict[str, Any] = {}

    def update(state: Progress) -> None:
        if state.table not in tasks:
            tasks[state.table] = bar.add_task(state.table, total=state.segments_total, rate="0")
        elapsed = max(time.perf_counter() - state.started, 1e-6)
        bar.update(
            tasks[state.table],
            completed=state.segments_done,
            rate=f"{state.rows_done / elapsed:,.0f}",
        )

    return bar, update


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=False, width=160 if not sys.stdout.isatty() else None)


def _emit(report: Report, fmt: Format, output: Path | None, limit: int) -> None:
    # lazy: the renderers pull in the report models; `strangler --help` must start fast
    from reconciler.render import to_html, to_json, to_rich

    if fmt is Format.table and output is None:
        _console().print(to_rich(report, limit=limit))
        return
    if fmt is Format.table:
        from rich.console import Console

        with output.open("w", encoding="utf-8") as handle:  # type: ignore[union-attr]
            Console(file=handle, width=160).print(to_rich(report, limit=limit))
        return
    text = to_json(report, limit=limit) if fmt is Format.json else to_html(report, limit=limit)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"report written to {output}", err=True)


@app.command("run")
def run(
    context: Annotated[str, typer.Argument(help="Bounded context, e.g. catalog.")],
    table: Annotated[
        list[str] | None, typer.Option("--table", "-t", help="Only this pair (repeatable).")
    ] = None,
    incremental: Annotated[
        bool,
        typer.Option(
            "--incremental",
            help="Check only keys with outbox events since the last clean run "
            "(a full run where there is none).",
        ),
    ] = False,
    repair: Annotated[
        bool, typer.Option(help="Write the source of truth to the other side.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what --repair would write; write nothing.")
    ] = False,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Report format.")] = Format.table,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here.")] = None,
    limit: Annotated[int, typer.Option(help="Divergent keys listed per table.")] = 100,
    monolith_url: Annotated[str | None, typer.Option(help="Monolith database URL.")] = None,
    service_url: Annotated[str | None, typer.Option(help="Service database URL.")] = None,
    executor: Annotated[
        ExecutorChoice, typer.Option(help="Run segments here or on Celery workers.")
    ] = ExecutorChoice.local,
    grace: Annotated[float, typer.Option(help="Seconds before divergent keys are re-read.")] = 1.0,
    stuck_after: Annotated[
        float,
        typer.Option(help="Seconds after which an unapplied outbox event is stuck, not in flight."),
    ] = 300.0,
    segment_size: Annotated[int, typer.Option(help="Keys per segment (Celery task).")] = 1 << 20,
    statistics: Annotated[
        bool,
        typer.Option(help="Create extended statistics on big PostgreSQL tables (faster plans)."),
    ] = True,
    parallel_workers: Annotated[
        int,
        typer.Option(
            "--parallel-workers",
            min=0,
            max=MAX_PARALLEL_WORKERS,
            help="PostgreSQL parallel workers each side's scans may add (0: one backend a side).",
        ),
    ] = 0,
    no_history: Annotated[bool, typer.Option("--no-history", help="Do not store the run.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
) -> None:
    """Compare CONTEXT's tables in both databases through the mapping; report, optionally repair."""
    # lazy: the runner pulls in SQLAlchemy and the whole pipeline, the target resolution the
    # plan models (pydantic); the CLI must start fast
    from reconciler.config import resolve
    from reconciler.runner import ReconcileOptions, reconcile

    try:
        target = resolve(context, monolith=monolith_url, service=service_url)
        options = ReconcileOptions(
            grace_seconds=grace,
            segment_size=segment_size,
            create_statistics=statistics,
            stuck_after=stuck_after,
            parallel_workers=parallel_workers,
        )
        runner_executor = None
        if executor is ExecutorChoice.celery:
            # lazy: Celery, and its app is configured at import
            from reconciler.celery_app import app as celery_app
            from reconciler.tasks import CeleryExecutor

            runner_executor = CeleryExecutor(celery_app)
        bar, update = _progress_bar() if progress and fmt is Format.table else (None, None)
        if bar is not None:
            bar.start()
        try:
            report = reconcile(
                target.plan.mapping,
                target.monolith_url,
                target.service_url,
                tables=table,
                options=options,
                executor=runner_executor,
                progress=update,
                phase=target.phase.value,
                incremental=incremental,
            )
        finally:
            if bar is not None:
                bar.stop()
        _emit(report, fmt, output, limit)
        if not no_history:
            _store(report, limit)
        if repair or dry_run:
            _repair(report, target, dry_run=dry_run or not repair)
    except ReconcileError as exc:
        raise _fail(str(exc)) from exc
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    raise typer.Exit(_EXIT_STATUS[report.verdict])


_EXIT_STATUS = {"clean": 0, "divergent": 1, "error": 2}
"""By verdict: a table that could not be compared is an error, as bad input is."""


def _store(report: Report, limit: int) -> None:
    """Store the run; a control plane that is down must not hide the report just printed."""
    from sqlalchemy.exc import SQLAlchemyError

    # lazy: the history store pulls in SQLAlchemy; the CLI must start fast
    from reconciler.history import record_run

    try:
        record_run(report, limit=limit)
    except SQLAlchemyError as exc:
        typer.echo(f"warning: run {report.run_id} not stored in the control plane: {exc}", err=True)


def _repair(report: Report, target: Target, *, dry_run: bool) -> None:
    # lazy: the repair pulls in SQLAlchemy and the pipeline; the CLI must start fast
    from reconciler.repair import apply_repair, plan_repair

    plan = plan_repair(
        report,
        target.plan.mapping,
        target.monolith_url,
        target.service_url,
        phase=target.phase,
        reverse_sync=target.reverse_sync,
    )
    verb = "would write" if dry_run else "writing"
    typer.echo(f"repair {plan.direction}: {verb} {len(plan.actions)} rows", err=True)
    if dry_run:
        typer.echo(plan.model_dump_json(indent=2))
        return
    written = apply_repair(plan, target.plan.mapping, target.monolith_url, target.service_url)
    typer.echo(
        f"repair {plan.direction}: wrote {written} rows (audited, run {plan.run_id})", err=True
    )


@app.command("history")
def history(
    context: Annotated[str | None, typer.Argument(help="Only this context.")] = None,
    limit: Annotated[int, typer.Option(help="Newest N runs.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """List stored runs, newest first, with their verdicts."""
    import json

    from rich.table import Table

    # lazy: the history store pulls in SQLAlchemy; the CLI must start fast
    from reconciler.history import recent_runs

    runs = recent_runs(context, limit=limit)
    if as_json:
        for summary in runs:
            typer.echo(json.dumps(summary.__dict__, default=str))
        return
    table = Table(title="reconcile history")
    for column in ("run", "context", "phase", "verdict", "started", "seconds", "divergent"):
        table.add_column(column)
    for summary in runs:
        table.add_row(
            summary.run_id[:12],
            summary.context,
            summary.phase or "",
            summary.verdict,
            summary.started_at.isoformat(timespec="seconds"),
            f"{summary.seconds:.2f}",
            str(summary.divergent),
        )
    _console().print(table)


@app.command("references")
def references(
    context: Annotated[str, typer.Argument(help="The referencing context, e.g. inventory.")],
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table or json.")] = Format.table,
    limit: Annotated[int, typer.Option(help="Orphaned rows listed per reference.")] = 100,
    monolith_url: Annotated[str | None, typer.Option(help="Monolith database URL.")] = None,
) -> None:
    """Check CONTEXT's declared references across databases: every referencing row's key
    exists in the owning context's source of truth. Exit 0 clean, 1 orphans, 2 error."""
    # lazy: the check pulls in SQLAlchemy and the plan models; the CLI must start fast
    from migration_plans.core.plan import load_plans
    from migration_plans.core.yamlfile import ConfigError
    from reconciler.config import load_context_plan, plans_dir, resolve
    from reconciler.references import Located, check_references

    def locate(name: str) -> Located:
        target = resolve(name, monolith=monolith_url)
        return Located(target.phase, target.monolith_url, target.service_url)

    try:
        load_context_plan(context)  # an unknown context lists the known ones
        report = check_references(load_plans(plans_dir()), context, locate, limit=limit)
    except (ReconcileError, ConfigError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    if fmt is Format.json:
        typer.echo(report.to_json())
    else:
        _console().print(report.to_rich())
    raise typer.Exit(_EXIT_STATUS[report.verdict])
