"""The data phases of a context and the two sides of a migration: the one place that says
which side is the source of truth and which side receives synced writes in each phase.

    Phase.SPLIT.source_of_truth              # Side.SERVICE
    Phase.DUAL_WRITE.synced_sides(True)      # (Side.SERVICE, Side.MONOLITH)
    Phase.SPLIT.synced_sides(reverse_sync=False)   # ()
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Phase", "Side"]


class Side(StrEnum):
    """One of the two stores of a context."""

    MONOLITH = "monolith"
    SERVICE = "service"

    @property
    def other(self) -> Side:
        return Side.SERVICE if self is Side.MONOLITH else Side.MONOLITH


class Phase(StrEnum):
    """The data phases of a context, in order (DESIGN.md, "The three data phases")."""

    SHARED = "shared"
    DUAL_WRITE = "dual_write"
    SPLIT = "split"

    @property
    def next(self) -> Phase | None:
        order = list(Phase)
        index = order.index(self)
        return order[index + 1] if index + 1 < len(order) else None

    @property
    def previous(self) -> Phase | None:
        order = list(Phase)
        index = order.index(self)
        return order[index - 1] if index > 0 else None

    @property
    def source_of_truth(self) -> Side:
        """The side whose version wins: the monolith until split, then the service."""
        return Side.SERVICE if self is Phase.SPLIT else Side.MONOLITH

    def synced_sides(self, reverse_sync: bool) -> tuple[Side, ...]:
        """The sides that receive the other side's writes through the relay in this phase.

        shared: none (the service reads the monolith's tables); dual_write: both; split:
        the monolith, only while ``reverse_sync`` keeps rollback possible.
        """
        if self is Phase.SHARED:
            return ()
        if self is Phase.SPLIT:
            return (Side.MONOLITH,) if reverse_sync else ()
        return (Side.SERVICE, Side.MONOLITH)

    @property
    def owns_database(self) -> bool:
        """True when a service reads and writes its own database (not in ``shared``)."""
        return self is not Phase.SHARED

    @property
    def monolith_is_current(self) -> bool:
        """True while the monolith's tables hold every write (reads may fall back to it)."""
        return self.source_of_truth is Side.MONOLITH
