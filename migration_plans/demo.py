"""`strangler demo`: the migration story on the embedded default (filled in by the monolith work)."""

from __future__ import annotations


def run_demo() -> int:
    """Run the demo; returns the process exit code."""
    raise NotImplementedError("the demo arrives with the monolith")
