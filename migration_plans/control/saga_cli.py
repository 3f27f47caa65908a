"""`strangler saga` commands: the monolith's sagas, the stuck ones, and a dead one's retry.

    strangler saga status [--stuck] [--kind place_order] [--json]
    strangler saga retry 42

Both read the monolith's database (``--monolith-url``, else
``STRANGLER_MONOLITH_DATABASE_URL``, else ``DATABASE_URL``) with SQLAlchemy through
:mod:`dualwrite.sagas`, never through Django; a saga's payload is never shown.
Stored text (keys, errors) is printed without its terminal control characters.

Exit status of ``status``: 0 nothing stuck, 1 a saga is stuck or dead, 2 error.
Exit status of ``retry``: 0 retried, 1 refused (no such saga, not dead), 2 error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from dualwrite.sagas import SagaCounts, SagaSummary

app = typer.Typer(
    no_args_is_help=True,
    help="Order sagas in the monolith's database: what is stuck, retry a dead one.",
)

ERROR_WIDTH = 80


class StateChoice(StrEnum):
    """The states a saga can be in (``--state``)."""

    running = "running"
    compensating = "compensating"
    completed = "completed"
    compensated = "compensated"
    dead = "dead"


MonolithOpt = Annotated[
    str | None,
    typer.Option(
        "--monolith-url",
        help="Monolith database URL (default: STRANGLER_MONOLITH_DATABASE_URL, else "
        "DATABASE_URL, else sqlite:///var/monolith.sqlite3).",
    ),
]


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def _monolith(url: str | None) -> Iterator[Engine]:
    """The monolith's engine, disposed after; an unreachable database exits with 2."""
    # lazy: SQLAlchemy and the saga queries; `strangler --help` must start fast
    from dualwrite.exceptions import StoreUnavailable
    from dualwrite.sagas import monolith_engine

    try:
        engine = monolith_engine(url)
    except StoreUnavailable as exc:
        raise _fail(str(exc), 2) from exc
    try:
        yield engine
    except StoreUnavailable as exc:
        raise _fail(str(exc), 2) from exc
    finally:
        engine.dispose()


def _duration(seconds: float) -> str:
    """A short age: 42s, 7m, 5h, 3d."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _short(text: str, width: int = ERROR_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def _counts_line(counts: SagaCounts, stuck_after: float) -> str:
    states = ", ".join(f"{count} {state}" for state, count in counts.states.items())
    kinds = ", ".join(f"{kind} {count}" for kind, count in counts.kinds.items()) or "none"
    return (
        f"sagas: {states}; {counts.stuck} stuck (dead, failing, or untouched for "
        f"{stuck_after:g} s)\nkinds: {kinds}"
    )


def _print_table(counts: SagaCounts, sagas: list[SagaSummary], stuck_after: float) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160)
    console.print(Text(_counts_line(counts, stuck_after)))
    if not sagas:
        console.print(Text("no saga matches"))
        return
    table = Table(title="sagas (stuck first)")
    for column in ("", "id", "kind", "key", "state", "step", "attempts", "outcome", "age"):
        table.add_column(column)
    table.add_column("last error", overflow="fold")
    for saga in sagas:
        # Text cells: stored text is never read as rich markup
        table.add_row(
            Text("STUCK", style="bold red") if saga.stuck else Text(""),
            Text(str(saga.id)),
            Text(saga.kind),
            Text(saga.key),
            Text(saga.state + (f" (from {saga.dead_from})" if saga.dead_from else "")),
            Text(saga.step_name or str(saga.step)),
            Text(str(saga.attempts)),
            Text(saga.outcome or "-"),
            Text(_duration(saga.age_s)),
            Text(_short(saga.error_line) or "-"),
        )
    console.print(table)


@app.command()
def status(
    state: Annotated[
        StateChoice | None, typer.Option("--state", help="Only sagas in this state.")
    ] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="Only sagas of this kind, e.g. place_order.")
    ] = None,
    stuck: Annotated[bool, typer.Option("--stuck", help="Only stuck sagas.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="Rows listed.")] = 50,
    stuck_after: Annotated[
        float,
        typer.Option(
            "--stuck-after",
            min=0,
            help="An active saga untouched for this many seconds is stuck.",
        ),
    ] = 60.0,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"counts": {...}, "sagas": [...]}.')
    ] = False,
    monolith_url: MonolithOpt = None,
) -> None:
    """Sagas per state and kind, then the sagas themselves, stuck ones first.

    A saga is stuck when it is dead-lettered, or running/compensating and failing
    (attempts > 0) or untouched for --stuck-after seconds.

    The counts cover every saga, whatever the filters.

    Exit status: 0 nothing stuck, 1 at least one saga stuck or dead, 2 error
    (database unreachable).
    """
    # lazy: SQLAlchemy and the saga queries; `strangler --help` must start fast
    from dualwrite.sagas import list_sagas, saga_counts

    with _monolith(monolith_url) as engine:
        counts = saga_counts(engine, stuck_after_s=stuck_after)
        sagas = list_sagas(
            engine,
            state=None if state is None else state.value,
            kind=kind,
            stuck_only=stuck,
            limit=limit,
            stuck_after_s=stuck_after,
        )
    if as_json:
        payload: dict[str, Any] = {
            "counts": counts.as_dict(),
            "sagas": [saga.as_dict() for saga in sagas],
        }
        typer.echo(json.dumps(payload, indent=2))
    else:
        _print_table(counts, sagas, stuck_after)
    raise typer.Exit(1 if counts.stuck else 0)


@app.command()
def retry(
    saga_id: Annotated[int, typer.Argument(metavar="ID", help="The dead saga's id.")],
    monolith_url: MonolithOpt = None,
) -> None:
    """Put the dead-lettered saga ID back where it died, with fresh attempts.

    The monolith's sweeper (Celery beat) resumes it within seconds. Exit status:
    0 retried, 1 refused (no such saga, or it is not dead), 2 error (database
    unreachable, monolith not migrated).
    """
    # lazy: SQLAlchemy and the saga queries; `strangler --help` must start fast
    from dualwrite.exceptions import SagaNotDead, SagaNotFound, SagaTableMissing
    from dualwrite.sagas import retry_dead

    with _monolith(monolith_url) as engine:
        try:
            saga = retry_dead(engine, saga_id)
        except (SagaNotFound, SagaNotDead) as exc:
            raise _fail(str(exc), 1) from exc
        except SagaTableMissing as exc:
            raise _fail(str(exc), 2) from exc
    typer.echo(
        f"saga {saga.id} ({saga.kind} {saga.key}): dead -> {saga.state} at step "
        f"{saga.step} ({saga.step_name or '-'}), attempts reset to 0, lease cleared; "
        "the monolith's sweeper resumes it within seconds"
    )
