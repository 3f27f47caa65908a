"""`strangler monolith` commands: serve and migrate ANY Django project, seed the shop's.

The project is the Django settings module in ``STRANGLER_MONOLITH_SETTINGS`` (else
``DJANGO_SETTINGS_MODULE``, else the example shop's ``legacy_monolith.settings``); its
package must be importable (its root on ``PYTHONPATH``). Nothing here is the shop's
but the default and ``seed``: the WSGI app is the one the settings name
(``WSGI_APPLICATION``, as ``runserver`` finds it), the ASGI app Django's own.

    STRANGLER_MONOLITH_SETTINGS=library.settings strangler monolith migrate
    STRANGLER_MONOLITH_SETTINGS=library.settings strangler monolith serve --server gunicorn
    strangler monolith manage createsuperuser       # any management command

Imports inside commands stay lazy: the CLI must start fast.
"""

from __future__ import annotations

import os
import sys

import typer

app = typer.Typer(no_args_is_help=True, help="The monolith (any Django project): serve, migrate.")

SETTINGS_ENV = "STRANGLER_MONOLITH_SETTINGS"
SHOP_SETTINGS = "legacy_monolith.settings"
#: uvicorn's factory: Django's ASGI handler for the configured settings.
ASGI_APP = "django.core.asgi:get_asgi_application"
#: gunicorn's factory call: the settings' ``WSGI_APPLICATION`` (Django's handler if unset).
WSGI_APP = "django.core.servers.basehttp:get_internal_wsgi_application()"


def settings_module() -> str:
    """The monolith's settings module: ``STRANGLER_MONOLITH_SETTINGS``, else
    ``DJANGO_SETTINGS_MODULE``, else the shop's."""
    return (
        os.environ.get(SETTINGS_ENV, "").strip()
        or os.environ.get("DJANGO_SETTINGS_MODULE", "").strip()
        or SHOP_SETTINGS
    )


def _use_settings() -> str:
    """Point Django (here and in every child) at :func:`settings_module`; refuse the shop
    without its ``SECRET_KEY``."""
    module = settings_module()
    os.environ["DJANGO_SETTINGS_MODULE"] = module
    if module == SHOP_SETTINGS:
        _require_secret_key()
    return module


def _require_secret_key() -> None:
    """Refuse to start without SECRET_KEY unless DEBUG is on (settings would refuse too)."""
    debug = os.environ.get("DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}
    if not debug and not os.environ.get("SECRET_KEY"):
        typer.echo(
            "SECRET_KEY is not set. Export SECRET_KEY=<random string> "
            "(or DEBUG=true for local development).",
            err=True,
        )
        raise typer.Exit(2)


def _manage(*argv: str) -> None:
    """Run a Django management command of the configured project."""
    _use_settings()
    from django.core.management import execute_from_command_line

    execute_from_command_line(["strangler monolith", *argv])


def _gunicorn_argv(host: str, port: int, workers: int, threads: int) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", WSGI_APP,
        "--bind", f"{host}:{port}", "--workers", str(workers),
        "--worker-class", "gthread", "--threads", str(threads),
        "--keep-alive", "75", "--backlog", "4096", "--log-level", "warning",
    ]  # fmt: skip


@app.command()
def serve(
    port: int = typer.Option(8001, help="TCP port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    workers: int = typer.Option(1, min=1, help="Worker processes."),
    server: str = typer.Option(
        "uvicorn",
        help="uvicorn: the native ASGI app. gunicorn: WSGI on gthread workers with persistent "
        "database connections (several times faster for small requests).",
    ),
    threads: int = typer.Option(8, min=1, help="Threads per gunicorn worker."),
) -> None:
    """Serve the project (uvicorn ASGI by default, or gunicorn WSGI), with long keep-alive."""
    _use_settings()
    if server == "gunicorn":
        # gthread threads live as long as the worker: persistent connections are safe here.
        os.environ.setdefault("DB_CONN_MAX_AGE", "60")
        argv = _gunicorn_argv(host, port, workers, threads)
        os.execv(sys.executable, argv)
    if server != "uvicorn":
        raise typer.BadParameter("choose uvicorn or gunicorn", param_hint="--server")
    import uvicorn

    uvicorn.run(
        ASGI_APP,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http="httptools",
        lifespan="off",
        access_log=False,
        timeout_keep_alive=75,
        backlog=4096,
        log_level="warning",
    )


@app.command()
def migrate() -> None:
    """Create or upgrade the monolith's tables (``manage.py migrate``)."""
    _manage("migrate", "--no-input")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def manage(ctx: typer.Context) -> None:
    """Run any Django management command of the monolith (``manage.py ARGS``)."""
    if not ctx.args:
        raise typer.BadParameter("name a management command", param_hint="ARGS")
    _manage(*ctx.args)


@app.command()
def seed(
    products: int = typer.Option(1_000, min=0),
    customers: int = typer.Option(100, min=0),
    orders: int = typer.Option(200, min=0),
    seed: int = typer.Option(42, help="Random seed: same seed, same rows."),
) -> None:
    """Replace the example shop's data with deterministic, realistic rows (the shop only)."""
    _manage(
        "seed",
        f"--products={products}",
        f"--customers={customers}",
        f"--orders={orders}",
        f"--seed={seed}",
    )


def main() -> None:
    """Entry point for ``python -m legacy_monolith.cli``."""
    app(args=sys.argv[1:])


if __name__ == "__main__":
    main()
