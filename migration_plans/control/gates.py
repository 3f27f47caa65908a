"""Gate evaluation: observe each gate's metric now and say whether a transition may happen.

Metrics come from a :class:`MetricSource` (one method per kind of evidence), so the
same evaluation runs against the real stores (shadow store, reconciler history,
dual-write relay status) and against fixed values in tests.

    results = evaluate(plan, Phase.DUAL_WRITE, source)
    if not all(result.passed for result in results): ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from migration_plans.core.plan import Gate, Phase, Plan


@dataclass(frozen=True)
class Observation:
    """A metric's current value and how many samples it rests on (None: unknown)."""

    value: float | None
    samples: int | None = None
    source: str = ""
    detail: str = ""
    """Shown after the sample count (the shadow gate: ``compared; 12 shed, 0 dropped``)."""


class MetricSource(Protocol):
    """Where gate metrics come from."""

    def observe(self, plan: Plan, metric: str) -> Observation: ...


@dataclass(frozen=True)
class GateResult:
    """One gate checked against one observation."""

    gate: Gate
    observation: Observation

    @property
    def passed(self) -> bool:
        return self.gate.holds(self.observation.value, self.observation.samples)

    def describe(self) -> str:
        value = self.observation.value
        now = "unknown" if value is None else f"{value:g}"
        if self.observation.samples is not None:
            now += f" over {self.observation.samples}"
        if self.observation.detail:
            now += f" {self.observation.detail}"
        verdict = "pass" if self.passed else "FAIL"
        return f"{verdict}: {self.gate} (now {now})"

    def as_dict(self) -> dict[str, object]:
        return {
            "gate": str(self.gate),
            "metric": self.gate.metric,
            "value": self.observation.value,
            "samples": self.observation.samples,
            "detail": self.observation.detail,
            "passed": self.passed,
        }


def evaluate(plan: Plan, target: Phase, source: MetricSource) -> list[GateResult]:
    """Check every gate guarding entry into ``target``."""
    return [
        GateResult(gate=gate, observation=source.observe(plan, gate.metric))
        for gate in plan.gates_to_enter(target)
    ]
