"""Transition history and gate evaluation against the control-plane database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine

from migration_plans.control.gates import Observation, evaluate
from migration_plans.control.history import (
    Transition,
    last_transition,
    record_transition,
    transitions,
)
from migration_plans.core.phase import Phase
from migration_plans.core.plan import Plan, load_plans
from migration_plans.core.settings import plans_dir


def test_transitions_are_recorded_newest_first(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'control.sqlite3'}")
    assert last_transition(engine, "catalog") is None
    record_transition(engine, Transition("catalog", "shared", "dual_write", "alice"))
    record_transition(
        engine,
        Transition(
            "catalog",
            "dual_write",
            "split",
            "bob",
            forced=True,
            reason="weekend freeze",
            gates={"dead_letters": 0},
            route_table_hash="abc",
        ),
    )
    record_transition(engine, Transition("inventory", "shared", "dual_write", "carol"))
    latest = last_transition(engine, "catalog")
    assert latest is not None
    assert (latest.actor, latest.forced, latest.reason, latest.gates) == (
        "bob",
        True,
        "weekend freeze",
        {"dead_letters": 0},
    )
    assert [t.to_phase for t in transitions(engine, "catalog")] == ["split", "dual_write"]
    assert len(transitions(engine)) == 3


class FixedMetrics:
    def __init__(self, values: dict[str, Observation]) -> None:
        self.values = values

    def observe(self, plan: Plan, metric: str) -> Observation:
        return self.values.get(metric, Observation(None))


def test_gates_pass_only_with_enough_evidence() -> None:
    plan = load_plans(plans_dir())["catalog"]
    thin = FixedMetrics({"shadow_match_rate": Observation(1.0, samples=10)})
    [result] = evaluate(plan, Phase.DUAL_WRITE, thin)
    assert not result.passed
    assert result.describe() == "FAIL: shadow_match_rate >= 0.999 over >= 1000 (now 1 over 10)"
    enough = FixedMetrics({"shadow_match_rate": Observation(0.9995, samples=2000)})
    assert all(r.passed for r in evaluate(plan, Phase.DUAL_WRITE, enough))


def test_unknown_metric_values_fail_their_gate() -> None:
    plan = load_plans(plans_dir())["catalog"]
    results = evaluate(plan, Phase.SPLIT, FixedMetrics({}))
    assert results and not any(r.passed for r in results)
