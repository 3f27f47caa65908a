"""JSON log lines for the relay processes; every line carries ``request_id`` (the X-Request-ID)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        event_id = getattr(record, "event_id", None)
        if event_id:
            line["event_id"] = event_id
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line)


def configure_logging(level: str = "INFO") -> None:
    """Send ``dualwrite`` logs to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("dualwrite")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
