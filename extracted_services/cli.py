"""`strangler service` commands. Heavy imports stay inside commands: the CLI must start fast.

strangler service serve catalog --port 8101       # follows the published phase
strangler service migrate catalog                  # CATALOG_DATABASE_URL to head
strangler service migrate catalog --sql            # print the SQL instead (offline)
strangler service downgrade catalog --revision base
"""

from __future__ import annotations

import os
from enum import StrEnum

import typer

from migration_plans.core.settings import DEFAULT_SERVICE_PORTS

app = typer.Typer(no_args_is_help=True, help="Extracted FastAPI services: serve and migrate.")


class Context(StrEnum):
    CATALOG = "catalog"
    INVENTORY = "inventory"
    PAYMENTS = "payments"


DEFAULT_PORTS = {Context(context): port for context, port in DEFAULT_SERVICE_PORTS.items()}


def _database_url(context: Context, url: str | None, *, sql: bool) -> str:
    if url:
        return url
    import importlib

    settings = importlib.import_module(f"extracted_services.{context.value}.config").Settings()
    if settings.database_url:
        return str(settings.database_url)
    if sql:
        # lazy: Alembic and SQLAlchemy; `strangler --help` must start fast
        from extracted_services.common.migrations import OFFLINE_DEFAULT_URL

        return OFFLINE_DEFAULT_URL
    typer.echo(
        f"{context.value.upper()}_DATABASE_URL is not set (or pass --database-url).", err=True
    )
    raise typer.Exit(2)


@app.command()
def serve(
    context: Context = typer.Argument(..., help="Which service."),
    port: int | None = typer.Option(
        None, help="TCP port (catalog 8101, inventory 8102, payments 8103)."
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    workers: int = typer.Option(1, min=1, help="uvicorn worker processes."),
    advertise_url: str | None = typer.Option(
        None, help="The URL registered with the control plane (default http://HOST:PORT)."
    ),
) -> None:
    """Serve a service with uvicorn; it follows the published phase (unless pinned) live."""
    import importlib

    import uvicorn

    # lazy: settings load pydantic-settings and the plan models; `strangler --help` must start fast
    from extracted_services.common.settings import ConfigurationError

    settings = importlib.import_module(f"extracted_services.{context.value}.config").Settings()
    try:
        settings.check_runnable()
    except ConfigurationError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    port = port or DEFAULT_PORTS[context]
    # The app factory reads its settings from the environment (in every worker).
    os.environ[f"{context.value.upper()}_ADVERTISE_URL"] = advertise_url or f"http://{host}:{port}"
    uvicorn.run(
        f"extracted_services.{context.value}.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_level="warning",
    )


@app.command()
def migrate(
    context: Context = typer.Argument(..., help="Which service."),
    revision: str = typer.Option("head", help="Target revision."),
    sql: bool = typer.Option(False, "--sql", help="Print the SQL instead of running it."),
    database_url: str | None = typer.Option(
        None, help="Defaults to <CONTEXT>_DATABASE_URL; for --sql a bare 'postgresql://' works."
    ),
) -> None:
    """Upgrade a service's own database with Alembic."""
    # lazy: Alembic and SQLAlchemy; `strangler --help` must start fast
    from extracted_services.common.migrations import upgrade

    upgrade(context.value, _database_url(context, database_url, sql=sql), revision, sql=sql)


@app.command()
def downgrade(
    context: Context = typer.Argument(..., help="Which service."),
    revision: str = typer.Option("-1", help="Target revision ('base' drops everything)."),
    sql: bool = typer.Option(
        False, "--sql", help="Print the SQL instead; needs a range such as 'head:base'."
    ),
    database_url: str | None = typer.Option(None, help="Defaults to <CONTEXT>_DATABASE_URL."),
) -> None:
    """Downgrade a service's own database with Alembic."""
    # lazy: Alembic and SQLAlchemy; `strangler --help` must start fast
    from extracted_services.common.migrations import downgrade as run_downgrade

    run_downgrade(context.value, _database_url(context, database_url, sql=sql), revision, sql=sql)
