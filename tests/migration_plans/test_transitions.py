"""advance / rollback: gates, forced transitions, history, route rewrite, refusals."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from migration_plans.control.exceptions import (
    ForceWithoutReason,
    GatesFailed,
    NoTransition,
    PlansMissing,
    RollbackLosesData,
    TransitionFailed,
    UnknownContext,
    WriteInsidePackage,
)
from migration_plans.control.gates import Observation
from migration_plans.control.history import transitions
from migration_plans.control.plan_file import set_phase
from migration_plans.control.transitions import Environment, advance, rollback
from migration_plans.core.phase import Phase
from migration_plans.core.plan import Plan, load_plan
from migration_plans.core.settings import TEMPLATES_DIR
from strangler_proxy.routetable.loader import load_table

ROUTES = """default_upstream: monolith
upstreams:
  monolith: {url: "http://127.0.0.1:8001"}
  catalog: {url: "http://127.0.0.1:8101"}
  inventory: {url: "http://127.0.0.1:8102"}
contexts:
  catalog:
    routes:
      - name: product-writes
        prefix: /api/v1/products/
        methods: [POST, PUT, PATCH, DELETE]
        upstream: monolith
"""


class FixedMetrics:
    def __init__(self, **values: Observation) -> None:
        self.values = values

    def observe(self, plan: Plan, metric: str) -> Observation:
        return self.values.get(metric, Observation(None))


GOOD = FixedMetrics(
    shadow_match_rate=Observation(1.0, samples=5000),
    reconcile_clean_runs=Observation(3),
    relay_lag_p99_ms=Observation(20),
    dead_letters=Observation(0),
)


@pytest.fixture
def env(tmp_path: Path) -> Environment:
    plans = tmp_path / "plans"
    plans.mkdir()
    for name in ("catalog.yaml", "inventory.yaml"):
        shutil.copy(TEMPLATES_DIR / name, plans / name)
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    engine: Engine = create_engine(f"sqlite:///{tmp_path / 'control.sqlite3'}")
    return Environment(
        plans_dir=plans, routes_path=routes, control=engine, metrics=GOOD, run_steps=False
    )


def phase_of(env: Environment, context: str) -> Phase:
    return load_plan(env.plans_dir / f"{context}.yaml").phase


def test_advance_moves_phase_routes_and_records_history(env: Environment) -> None:
    outcome = advance(env, "catalog", actor="alice")
    assert (outcome.from_phase, outcome.to_phase, outcome.forced) == (
        Phase.SHARED,
        Phase.DUAL_WRITE,
        False,
    )
    assert phase_of(env, "catalog") is Phase.DUAL_WRITE
    assert env.routes_path is not None
    table = load_table(env.routes_path).table
    assert table.contexts["catalog"].routes[0].upstream == "catalog"
    [recorded] = transitions(env.engine(), "catalog")
    assert (recorded.actor, recorded.to_phase) == ("alice", "dual_write")
    assert recorded.route_table_hash == outcome.route_table_hash
    assert recorded.gates["shadow_match_rate"]["passed"] is True


def test_failing_gates_refuse_and_change_nothing(env: Environment) -> None:
    env.metrics = FixedMetrics(shadow_match_rate=Observation(0.98, samples=5000))
    assert env.routes_path is not None
    before = env.routes_path.read_text()
    with pytest.raises(GatesFailed, match=r"FAIL: shadow_match_rate >= 0.999.*now 0.98"):
        advance(env, "catalog")
    assert phase_of(env, "catalog") is Phase.SHARED
    assert env.routes_path.read_text() == before
    assert transitions(env.engine()) == []


def test_force_needs_a_reason_and_records_it(env: Environment) -> None:
    env.metrics = FixedMetrics()
    with pytest.raises(ForceWithoutReason):
        advance(env, "catalog", force=True)
    outcome = advance(env, "catalog", force=True, reason="shadow store was flushed")
    assert outcome.forced
    [recorded] = transitions(env.engine(), "catalog")
    assert recorded.forced and recorded.reason == "shadow store was flushed"


def test_split_is_the_end_and_shared_the_beginning(env: Environment) -> None:
    advance(env, "catalog")
    advance(env, "catalog")
    assert phase_of(env, "catalog") is Phase.SPLIT
    with pytest.raises(NoTransition):
        advance(env, "catalog")
    rollback(env, "catalog")
    rollback(env, "catalog")
    with pytest.raises(NoTransition):
        rollback(env, "catalog")
    assert [t.to_phase for t in transitions(env.engine(), "catalog")] == [
        "shared",
        "dual_write",
        "split",
        "dual_write",
    ]


def test_rollback_from_split_without_reverse_sync_is_refused(env: Environment) -> None:
    path = env.plans_dir / "catalog.yaml"
    path.write_text(path.read_text().replace("reverse_sync: true", "reverse_sync: false"))
    set_phase(path, Phase.SPLIT)
    with pytest.raises(RollbackLosesData, match="without reverse sync"):
        rollback(env, "catalog")
    assert phase_of(env, "catalog") is Phase.SPLIT


def test_a_route_table_that_cannot_follow_puts_the_phase_back(env: Environment) -> None:
    assert env.routes_path is not None
    env.routes_path.write_text(ROUTES.replace('  catalog: {url: "http://127.0.0.1:8101"}\n', ""))
    with pytest.raises(TransitionFailed, match="route table rewrite"):
        advance(env, "catalog")
    assert phase_of(env, "catalog") is Phase.SHARED
    assert transitions(env.engine()) == []


def test_unknown_context_lists_the_known_ones(env: Environment) -> None:
    with pytest.raises(UnknownContext, match="known: catalog, inventory"):
        advance(env, "payments")


def template_bytes() -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(TEMPLATES_DIR.glob("*.yaml"))}


def test_advance_and_rollback_write_the_plans_folder_never_the_templates(
    env: Environment,
) -> None:
    before = template_bytes()
    advance(env, "catalog")
    advance(env, "catalog")
    assert phase_of(env, "catalog") is Phase.SPLIT
    rollback(env, "catalog")
    rollback(env, "catalog")
    assert phase_of(env, "catalog") is Phase.SHARED
    assert len(transitions(env.engine(), "catalog")) == 4
    assert template_bytes() == before


def test_a_plans_folder_inside_the_package_is_never_written(env: Environment) -> None:
    before = template_bytes()
    env.plans_dir = TEMPLATES_DIR
    with pytest.raises(WriteInsidePackage, match="inside the installed package"):
        advance(env, "catalog")
    assert template_bytes() == before
    assert transitions(env.engine()) == []


def test_a_missing_plans_folder_is_named_with_the_command_that_makes_it(
    env: Environment, tmp_path: Path
) -> None:
    env.plans_dir = tmp_path / "nowhere"
    with pytest.raises(PlansMissing, match=r"no plans folder at .*nowhere.*strangler plan init"):
        advance(env, "catalog")
    env.plans_dir.mkdir()
    with pytest.raises(PlansMissing, match=r"no plan files in .*nowhere.*strangler plan init"):
        rollback(env, "catalog")
