"""`strangler demo`: the migration story on the embedded default (SQLite, no servers).

For now the story's first chapter: migrate the monolith's SQLite database under
the var directory, seed it, serve it with uvicorn, show a few API calls and their
answers, and stop it cleanly.

    STRANGLER_DEMO_PORT=8001 STRANGLER_VAR_DIR=./var strangler demo
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import typer

from migration_plans.processes import ManagedProcess, ProcessStartError

DEFAULT_PORT = 8001
SEED_ARGS = ["--products", "500", "--customers", "20", "--orders", "100", "--seed", "42"]


def say(message: str = "") -> None:
    """Write a line of the demo's narration."""
    typer.echo(message)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something already listens on ``host:port`` (or it cannot be bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like the server will: connections in TIME_WAIT from a previous run do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def monolith_env(var_dir: Path) -> dict[str, str]:
    """Environment of the demo's monolith: SQLite under ``var_dir``, a throwaway secret key."""
    return {
        "DATABASE_URL": f"sqlite:///{(var_dir / 'monolith.sqlite3').resolve()}",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(48),
        "DJANGO_SETTINGS_MODULE": "legacy_monolith.settings",
    }


def manage(env: dict[str, str], *argv: str) -> None:
    """Run a monolith management command; raise with its output if it fails."""
    say(f"$ python -m legacy_monolith.manage {' '.join(argv)}")
    result = subprocess.run(
        [sys.executable, "-m", "legacy_monolith.manage", *argv],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    for line in result.stdout.splitlines():
        say(f"  {line}")
    if result.returncode != 0:
        raise RuntimeError(f"manage {argv[0]} failed:\n{result.stderr}")


def show(client: httpx.Client, method: str, path: str, body: Any = None) -> Any:
    """Make one API call, print it and a shortened answer; return the decoded JSON."""
    response = client.request(method, path, json=body)
    say(f"\n> {method} {path}" + (f" {json.dumps(body)}" if body is not None else ""))
    text = json.dumps(response.json(), indent=2)
    lines = text.splitlines()
    shown = "\n".join(lines[:24]) + ("\n  ..." if len(lines) > 24 else "")
    say(f"< {response.status_code}\n{shown}")
    return response.json()


def _stocked_active_product(client: httpx.Client) -> int:
    """Id of an active product with plenty of stock."""
    stock = client.get("/api/v1/stock/", params={"ordering": "-quantity", "page_size": 20})
    for item in stock.json()["results"]:
        if client.get(f"/api/v1/products/{item['product']}/").json()["is_active"]:
            return int(item["product"])
    raise RuntimeError("the seeded shop has no active product in stock")


def tour(url: str) -> None:
    """A customer's walk through the shop's API."""
    with httpx.Client(base_url=url, timeout=30) as client:
        show(client, "GET", "/healthz")
        show(client, "GET", "/api/v1/products/?page_size=2&ordering=-price")
        show(client, "POST", "/api/v1/customers/",
             {"username": "demo", "password": "demo-password-1", "email": "demo@example.com"})  # fmt: skip
        token = show(client, "POST", "/api/v1/auth/token/",
                     {"username": "demo", "password": "demo-password-1"})["token"]  # fmt: skip
        client.headers["Authorization"] = f"Token {token}"
        product = _stocked_active_product(client)
        show(client, "GET", f"/api/v1/stock/?product={product}")
        order = {"lines": [{"product": product, "quantity": 2}], "payment_token": "tok_visa"}
        show(client, "POST", "/api/v1/orders/", order)
        show(client, "GET", f"/api/v1/stock/?product={product}")
        declined = {"lines": [{"product": product, "quantity": 1}], "payment_token": "tok_declined"}
        show(client, "POST", "/api/v1/orders/", declined)


def run_demo(*, port: int | None = None, var_dir: Path | None = None) -> int:
    """Run the demo; returns the process exit code.

    ``port`` defaults to ``STRANGLER_DEMO_PORT`` or 8001, ``var_dir`` to
    ``STRANGLER_VAR_DIR`` or ``./var``.
    """
    port = port or int(os.environ.get("STRANGLER_DEMO_PORT", DEFAULT_PORT))
    var_dir = var_dir or Path(os.environ.get("STRANGLER_VAR_DIR", "var"))
    if port_in_use(port):
        say(f"strangler demo: port {port} is already in use; stop whatever listens there "
            "or set STRANGLER_DEMO_PORT to a free port.")  # fmt: skip
        return 1
    var_dir.mkdir(parents=True, exist_ok=True)
    env = monolith_env(var_dir)
    say(f"== The legacy monolith on SQLite ({env['DATABASE_URL']})")
    manage(env, "migrate", "--no-input", "--verbosity", "0")
    manage(env, "seed", *SEED_ARGS)
    argv = [sys.executable, "-m", "legacy_monolith.cli", "serve", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    say(f"\n$ strangler monolith serve --port {port}")
    try:
        process = ManagedProcess.start(argv, name="monolith", health_url=f"{url}/healthz",
                                       env=env, log_dir=var_dir / "log", timeout=60)  # fmt: skip
    except ProcessStartError as exc:
        say(f"strangler demo: the monolith did not start: {exc}")
        return 1
    with process:
        say(f"monolith serving on {url} (pid {process.pid}, log {process.log_path})")
        tour(url)
    code = process.popen.returncode
    if code not in (0, -signal.SIGTERM):
        say(f"\nstrangler demo: the monolith exited with {code}; see {process.log_path}")
        return 1
    say("\nmonolith stopped cleanly.")
    return 0
