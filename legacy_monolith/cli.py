"""`strangler monolith` commands. Imports inside commands stay lazy: the CLI must start fast."""

from __future__ import annotations

import os
import sys

import typer

from legacy_monolith.manage import main as manage_main

app = typer.Typer(no_args_is_help=True, help="The legacy monolith: serve, migrate, seed.")

ASGI_APP = "legacy_monolith.asgi:application"
WSGI_APP = "legacy_monolith.wsgi:application"


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
    _require_secret_key()
    manage_main(["strangler monolith", *argv])


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
    """Serve the API (uvicorn ASGI by default, or gunicorn WSGI), with long keep-alive."""
    _require_secret_key()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "legacy_monolith.settings")
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
    """Create or upgrade the monolith's tables (DATABASE_URL)."""
    _manage("migrate", "--no-input")


@app.command()
def seed(
    products: int = typer.Option(1_000, min=0),
    customers: int = typer.Option(100, min=0),
    orders: int = typer.Option(200, min=0),
    seed: int = typer.Option(42, help="Random seed: same seed, same rows."),
) -> None:
    """Replace the shop's data with deterministic, realistic rows."""
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
