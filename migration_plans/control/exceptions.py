"""Errors of the control plane.

PlanError
├── PlansMissing          no plans folder, or no plan in it (run `strangler plan init`)
├── WriteInsidePackage    a plan file to write is inside the installed package (a template)
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
from pathlib import Path
from typing import TYPE_CHECKING

from migration_plans.core.settings import PLANS_DIR_ENV

if TYPE_CHECKING:
    from migration_plans.control.gates import GateResult


class PlanError(Exception):
    """Base class of every control-plane error."""


def _init_hint(directory: Path) -> str:
    return f"run `strangler plan init --plans-dir {directory}` or set {PLANS_DIR_ENV}"


class PlansMissing(PlanError):
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        what = "no plan files in" if directory.is_dir() else "no plans folder at"
        super().__init__(f"{what} {directory} ({_init_hint(directory)})")


class WriteInsidePackage(PlanError):
    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"refusing to write {path}: it is inside the installed package, whose plans are "
            f"templates ({_init_hint(Path('plans'))} to get a copy to move)"
        )


class UnknownContext(PlanError):
    def __init__(self, context: str, known: Sequence[str], directory: Path | None = None) -> None:
        where = f" in {directory}" if directory is not None else ""
        super().__init__(
            f"no plan for context {context!r}{where} (known: {', '.join(sorted(known))})"
        )


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


class ReplicasNotReady(PlanError):
    """Live replicas do not serve the current phase and route table (nothing moved)."""

    def __init__(self, context: str, detail: str) -> None:
        self.context = context
        super().__init__(f"{context}: cannot start the transition: {detail}")


class CutOverAborted(PlanError):
    """The write fence could not finish in time; the phase stayed where it was."""

    def __init__(self, context: str, step: str, detail: str) -> None:
        self.context = context
        self.step = step
        super().__init__(f"{context}: cut-over aborted at {step}: {detail}")
