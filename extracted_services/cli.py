"""`strangler service` commands. Heavy imports stay inside commands: the CLI must start fast.

strangler service serve catalog --port 8101       # follows the published phase
strangler service migrate catalog                  # CATALOG_DATABASE_URL to head
strangler service migrate catalog --sql            # print the SQL instead (offline)
strangler service downgrade catalog --revision base
strangler service serve shipping --module acme_services.shipping   # a package of your own

CONTEXT is any context with a plan in the plans folder (``STRANGLER_PLANS_DIR``) or one
of the shipped examples (catalog, inventory, payments); its plan's ``service_module``
is the package served and migrated (see :mod:`extracted_services.common.package`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from extracted_services.common.package import ServicePackage

app = typer.Typer(no_args_is_help=True, help="Extracted FastAPI services: serve and migrate.")

CONTEXT_HELP = "The context: one with a plan in STRANGLER_PLANS_DIR, or catalog/inventory/payments."
MODULE_HELP = (
    "The service's Python package (default: the plan's service_module, else "
    "extracted_services.CONTEXT); its project root must be on PYTHONPATH."
)


def _fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(2)


def _package(context: str, module: str | None) -> ServicePackage:
    """The context's service package, or exit 2 saying why there is none."""
    # lazy: plan models and pydantic; `strangler --help` must start fast
    from extracted_services.common.package import ServicePackage
    from migration_plans.core.settings import BadSetting, UnknownContext
    from migration_plans.core.yamlfile import ConfigError

    try:
        return ServicePackage.resolve(context, module=module)
    except UnknownContext as exc:
        _fail(f"{exc} (or pass --module)")
    except (ConfigError, BadSetting, ValueError) as exc:
        _fail(str(exc))


def _database_url(package: ServicePackage, url: str | None, *, sql: bool) -> str:
    if url:
        return url
    from extracted_services.common.package import ServicePackageError

    try:
        settings = package.settings()
    except ServicePackageError as exc:
        _fail(str(exc))
    if settings.database_url:
        return str(settings.database_url)
    if sql:
        # lazy: Alembic and SQLAlchemy; `strangler --help` must start fast
        from extracted_services.common.migrations import OFFLINE_DEFAULT_URL

        return OFFLINE_DEFAULT_URL
    _fail(f"{package.context.upper()}_DATABASE_URL is not set (or pass --database-url).")


@app.command()
def serve(
    context: str = typer.Argument(..., help=CONTEXT_HELP),
    port: int | None = typer.Option(
        None,
        help="TCP port (default STRANGLER_<CONTEXT>_PORT, else the plan's port, else "
        "catalog 8101, inventory 8102, payments 8103, else one in 8200-8999 derived from "
        "the context's name).",
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    workers: int = typer.Option(1, min=1, help="uvicorn worker processes."),
    advertise_url: str | None = typer.Option(
        None, help="The URL registered with the control plane (default http://HOST:PORT)."
    ),
    module: str | None = typer.Option(None, help=MODULE_HELP),
) -> None:
    """Serve a service with uvicorn; it follows the published phase (unless pinned) live."""
    import uvicorn

    # lazy: settings load pydantic-settings and the plan models; `strangler --help` must start fast
    from extracted_services.common.package import ServicePackageError
    from extracted_services.common.settings import ConfigurationError
    from migration_plans.core.settings import BadSetting

    package = _package(context, module)
    try:
        factory = package.app_factory
        package.settings().check_runnable()
        port = port or package.port
    except (ServicePackageError, ConfigurationError, BadSetting) as exc:
        _fail(str(exc))
    # The app factory reads its settings from the environment (in every worker).
    os.environ[f"{context.upper()}_ADVERTISE_URL"] = advertise_url or f"http://{host}:{port}"
    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_level="warning",
    )


@app.command()
def migrate(
    context: str = typer.Argument(..., help=CONTEXT_HELP),
    revision: str = typer.Option("head", help="Target revision."),
    sql: bool = typer.Option(False, "--sql", help="Print the SQL instead of running it."),
    database_url: str | None = typer.Option(
        None, help="Defaults to <CONTEXT>_DATABASE_URL; for --sql a bare 'postgresql://' works."
    ),
    module: str | None = typer.Option(None, help=MODULE_HELP),
) -> None:
    """Upgrade a service's own database with Alembic."""
    # lazy: Alembic and SQLAlchemy; `strangler --help` must start fast
    from extracted_services.common.migrations import upgrade
    from extracted_services.common.package import ServicePackageError

    package = _package(context, module)
    url = _database_url(package, database_url, sql=sql)
    try:
        upgrade(context, url, revision, sql=sql, module=package.module)
    except ServicePackageError as exc:
        _fail(str(exc))


@app.command()
def downgrade(
    context: str = typer.Argument(..., help=CONTEXT_HELP),
    revision: str = typer.Option("-1", help="Target revision ('base' drops everything)."),
    sql: bool = typer.Option(
        False, "--sql", help="Print the SQL instead; needs a range such as 'head:base'."
    ),
    database_url: str | None = typer.Option(None, help="Defaults to <CONTEXT>_DATABASE_URL."),
    module: str | None = typer.Option(None, help=MODULE_HELP),
) -> None:
    """Downgrade a service's own database with Alembic."""
    # lazy: Alembic and SQLAlchemy; `strangler --help` must start fast
    from extracted_services.common.migrations import downgrade as run_downgrade
    from extracted_services.common.package import ServicePackageError

    package = _package(context, module)
    url = _database_url(package, database_url, sql=sql)
    try:
        run_downgrade(context, url, revision, sql=sql, module=package.module)
    except ServicePackageError as exc:
        _fail(str(exc))
