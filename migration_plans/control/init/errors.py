"""What ``strangler init`` refuses, and why: every message names the model or field.

InitError                 the project cannot be inspected (settings, app label, --models)
└── Unmappable            a model or field has no generated counterpart; the message
                          says what to write by hand (``--skip-unmappable`` skips it)
"""

from __future__ import annotations


class InitError(Exception):
    """``strangler init`` cannot go on; the message says what to change."""


class Unmappable(InitError):
    """One model or field the generator cannot map, with what to write by hand instead.

    ``where`` is ``app_label.Model`` or ``app_label.Model.field``.
    """

    def __init__(self, where: str, what: str, by_hand: str) -> None:
        self.where = where
        self.what = what
        self.by_hand = by_hand
        super().__init__(f"{where}: {what}; {by_hand}")


class UnmappableSet(InitError):
    """Every unmappable model and field found, reported together."""

    def __init__(self, problems: list[Unmappable]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(
            f"{len(problems)} model(s) or field(s) cannot be mapped "
            f"(--skip-unmappable leaves them out, each noted in the plan):\n{lines}"
        )
