"""The shadow copy marker every package shares: ``X-Strangler-Shadow``.

The proxy's mirror sends a copy of a request to a candidate with this header (value
``1``; an offline replay sends ``replay`` on reads). A service that sees it on an
unsafe method knows the write is a copy whose answer is only compared: it refuses it
or runs it in a transaction it rolls back (:mod:`extracted_services.common.shadow`).

    is_shadow_write("POST", request.headers.get(SHADOW_HEADER))   # True
"""

from __future__ import annotations

from migration_plans.core.http import SAFE_METHODS

__all__ = ["SHADOW_HEADER", "is_shadow_write"]

SHADOW_HEADER = "X-Strangler-Shadow"


def is_shadow_write(method: str, marker: str | None) -> bool:
    """Whether a request of ``method`` carrying ``marker`` (the header's value) is a
    mirrored copy of a write: any non-empty value marks a copy."""
    return bool(marker and marker.strip()) and method.upper() not in SAFE_METHODS
