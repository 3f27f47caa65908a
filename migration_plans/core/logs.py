"""Structured logs: one JSON object per line, carrying the request id (``X-Request-ID``).

Every process of the toolkit (proxy, services, relay, reconciler workers) logs through
:class:`JsonFormatter`; the request id comes from the record (``extra={"request_id": ...}``)
or from :data:`request_id_var`, set per request or task.

    configure_json_logging(["dualwrite"], level="INFO")
    log.info("applied", extra={"event_id": "..."})
    # {"ts": "...", "level": "info", "logger": "dualwrite.relay", "message": "applied",
    #  "request_id": null, "event_id": "..."}
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime

__all__ = ["JsonFormatter", "configure_json_logging", "request_id_var"]

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "request_id", "color_message", "taskName"}
)


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", "request_id", ...extras, "exc"}``.

    Records of ``raw_loggers`` are emitted as their message alone (an access log whose
    messages are JSON already).
    """

    def __init__(self, raw_loggers: Iterable[str] = ()) -> None:
        super().__init__()
        self.raw_loggers = frozenset(raw_loggers)

    def format(self, record: logging.LogRecord) -> str:
        if record.name in self.raw_loggers:
            return record.getMessage()
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_json_logging(
    logger_names: Iterable[str] = ("",),
    *,
    level: str | int = "INFO",
    raw_loggers: Iterable[str] = (),
) -> None:
    """Send the named loggers (``""``: the root) to stderr as JSON lines; idempotent."""
    formatter = JsonFormatter(raw_loggers)
    for name in logger_names:
        logger = logging.getLogger(name)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper() if isinstance(level, str) else level)
        if name:
            logger.propagate = False
