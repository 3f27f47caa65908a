"""The data phase a service runs in (see DESIGN.md, "The three data phases").

- ``shared``: reads the monolith's tables through a read-only connection; refuses writes.
- ``dual_write``: reads and writes its own database; every write also lands in the outbox.
- ``split``: its own database is the source of truth; the outbox only with reverse sync.

The enum is the control plane's: one definition of the phases for every package.
"""

from __future__ import annotations

from migration_plans.core.plan import Phase

__all__ = ["Phase"]
