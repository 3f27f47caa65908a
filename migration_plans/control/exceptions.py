"""Errors of the control plane.

PlanError
├── UnknownContext        no plan for the context named on the command line
├── NoTransition          already in the last (or first) phase
├── GatesFailed           gates guarding the transition do not hold (lists them)
├── ForceWithoutReason    --force given without --reason
├── RollbackLosesData     split -> dual_write without reverse sync
└── TransitionFailed      a step of the transition failed (names the step); the plan
                          file and route table are left as they were
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from migration_plans.control.gates import GateResult


class PlanError(Exception):
    """Base class of every control-plane error."""


class UnknownContext(PlanError):
    def __init__(self, context: str, known: Sequence[str]) -> None:
        super().__init__(f"no plan for context {context!r} (known: {', '.join(sorted(known))})")


class NoTransition(PlanError):
    """There is no phase to move to."""


class GatesFailed(PlanError):
    def __init__(self, context: str, target: str, failing: Sequence[GateResult]) -> None:
        self.failing = list(failing)
        lines = "\n".join(f"  {result.describe()}" for result in failing)
        super().__init__(
            f"{context}: gates to enter {target} do not hold:\n{lines}\n"
            "(--force --reason '...' overrides them and records why)"
        )


class ForceWithoutReason(PlanError):
    def __init__(self) -> None:
        super().__init__("--force needs --reason: the history records why gates were skipped")


class RollbackLosesData(PlanError):
    """Rolling back would lose writes made since the previous phase."""


class TransitionFailed(PlanError):
    def __init__(self, context: str, step: str, cause: BaseException) -> None:
        self.step = step
        super().__init__(f"{context}: {step} failed: {cause}")
