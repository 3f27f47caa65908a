"""The services' JSON logs: :class:`migration_plans.core.logs.JsonFormatter` on the root logger.

Each line carries the current request id (:data:`migration_plans.core.logs.request_id_var`,
set by :class:`~extracted_services.common.requestid.RequestIdMiddleware`).

    configure_logging("INFO")
"""

from __future__ import annotations

import logging
import sys

from migration_plans.core.logs import JsonFormatter

__all__ = ["configure_logging"]


def configure_logging(level: str = "INFO") -> None:
    """Add a JSON handler on stderr to the root logger, keeping its other handlers (idempotent)."""
    root = logging.getLogger()
    if any(isinstance(handler.formatter, JsonFormatter) for handler in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
