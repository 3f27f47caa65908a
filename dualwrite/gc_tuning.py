"""Garbage-collector settings for a relay process.

A relay batch makes thousands of short-lived objects (events, their field dicts, the
statements' parameter lists). With CPython's default threshold (700 allocations) the
collector ran every few hundred events, and each older collection walked every object
of the process, the long-lived ones of SQLAlchemy, psycopg and the plan included: in a
drain of 100,000 events, a fifth of the relay's own CPU went to building events, most
of it collections. So a relay process freezes what it allocated at startup (never
scanned again) and collects its youngest generation every
:data:`YOUNG_GENERATION_THRESHOLD` allocations.

    tune_for_batches()   # once, when the relay process has started
"""

from __future__ import annotations

import gc

YOUNG_GENERATION_THRESHOLD = 50_000
"""Allocations between two collections of the youngest generation (CPython's default: 700)."""


def tune_for_batches() -> None:
    """Freeze the objects allocated so far and collect the youngest generation less often.

    For a process that runs the relay loop (``dualwrite relay``), not for a library
    caller: it changes the whole interpreter's collector.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, older, oldest)
