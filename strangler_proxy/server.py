"""Run the proxy under uvicorn (uvloop, httptools) with JSON logs on stderr.

run(ProxyConfig.from_env(routes=Path("routes.yaml"), port=8000))
"""

from __future__ import annotations

import json
import logging
import sys

from strangler_proxy.app import StranglerProxy
from strangler_proxy.config import ProxyConfig


class JsonFormatter(logging.Formatter):
    """One JSON object per line; access-log messages are JSON already."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == "strangler.proxy.access":
            return record.getMessage()
        data = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("event", "version", "hash", "issues", "request_id"):
            if hasattr(record, key):
                data[key] = getattr(record, key)
        return json.dumps(data, default=str)


def configure_logging(access_log: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("strangler")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logging.getLogger("strangler.proxy.access").disabled = not access_log


def run(config: ProxyConfig) -> None:
    """Serve until SIGTERM/SIGINT; SIGHUP reloads the route table."""
    import uvicorn

    configure_logging(config.access_log)
    proxy = StranglerProxy(config)
    proxy.handle_sighup = True
    uvicorn_config = uvicorn.Config(
        proxy,
        host=config.host,
        port=config.port,
        loop="uvloop",
        http="httptools",
        ws="none",
        lifespan="on",
        access_log=False,
        server_header=False,
        date_header=False,
        log_level="warning",
        timeout_keep_alive=30,
        proxy_headers=False,  # X-Forwarded-* from clients are never trusted
        h11_max_incomplete_event_size=config.max_header_bytes,
    )
    uvicorn.Server(uvicorn_config).run()
