"""``python -m strangler_proxy serve --routes FILE``: the proxy without the full CLI."""

from strangler_proxy.cli import app

app()
