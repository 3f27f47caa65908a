"""The data phase a service runs in (see DESIGN.md, "The three data phases")."""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """Where a service reads from and whether it takes writes.

    - ``shared``: reads the monolith's tables through a read-only connection; refuses writes.
    - ``dual_write``: reads and writes its own database; every write also lands in the outbox.
    - ``split``: its own database is the source of truth; the outbox only with reverse sync.
    """

    SHARED = "shared"
    DUAL_WRITE = "dual_write"
    SPLIT = "split"

    @property
    def owns_database(self) -> bool:
        """True when the service reads and writes its own database."""
        return self is not Phase.SHARED
