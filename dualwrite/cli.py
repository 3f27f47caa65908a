"""`strangler dualwrite` commands. Imports inside commands stay lazy: the CLI must start fast."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Dual-write: outbox relay, backfill, status.")
