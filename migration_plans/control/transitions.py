"""Move a context between phases: gates, the work each transition needs, the live cut-over.

    outcome = advance(Environment.from_env(), "catalog", actor="alice")
    outcome = rollback(Environment.from_env(), "catalog", actor="alice")

Order matters: gates, then the work the next phase needs while the old one still
serves (migrate the service database, backfill, final reconcile), then the cut-over
(:mod:`migration_plans.control.cutover`: every replica acknowledges, writes are fenced
while the outboxes drain, plan file and route table flip, the new phase is published
and acknowledged, the fence lifts), then the transition is recorded. No process is
restarted. In the flip the plan's phase changes first, then the route table is
rewritten and validated under the new phase; if the rewrite fails the plan's phase is
put back and the cut-over aborts.
"""

from __future__ import annotations

import getpass
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from dualwrite.backfill import Backfill
from dualwrite.capture import install_capture, set_capture
from dualwrite.config import Direction, RelaySettings
from dualwrite.engines import relay_engine
from dualwrite.exceptions import StoreUnavailable
from dualwrite.relay import Relay
from dualwrite.status import Backlog, outbox_backlog
from extracted_services.common.migrations import upgrade
from migration_plans.control.cutover import (
    CutOver,
    CutOverReport,
    CutOverSettings,
    Drain,
    OutboxNotDrained,
    route_file_hash,
)
from migration_plans.control.evidence import StoreEvidence
from migration_plans.control.exceptions import (
    ForceWithoutReason,
    GatesFailed,
    NoTransition,
    RollbackLosesData,
    TransitionFailed,
    UnknownContext,
)
from migration_plans.control.gates import GateResult, MetricSource, evaluate
from migration_plans.control.history import Transition, last_transition, record_transition
from migration_plans.control.plan_file import atomic_write, read_plans, set_phase
from migration_plans.control.routing import prepare_routes
from migration_plans.core.control_db import control_engine
from migration_plans.core.live_phase import read_states
from migration_plans.core.phase import Phase, Side
from migration_plans.core.plan import Plan
from migration_plans.core.replicas import list_replicas
from migration_plans.core.settings import plan_path
from migration_plans.core.settings import plans_dir as configured_plans_dir
from reconciler.history import record_run
from reconciler.runner import reconcile

Step = Callable[[Plan], dict[str, Any]]


@dataclass
class Environment:
    """Where the plans, the route table and the control-plane database are."""

    plans_dir: Path = field(default_factory=configured_plans_dir)
    routes_path: Path | None = None
    control: Engine | None = None
    metrics: MetricSource | None = None
    run_steps: bool = True
    cutover: CutOverSettings = field(default_factory=CutOverSettings)

    @classmethod
    def from_env(cls) -> Environment:
        """``STRANGLER_PLANS_DIR``, ``STRANGLER_ROUTES`` and the control-plane URL."""
        routes = os.environ.get("STRANGLER_ROUTES")
        return cls(
            plans_dir=configured_plans_dir(),
            routes_path=Path(routes) if routes else None,
        )

    def plans(self) -> dict[str, Plan]:
        """Every plan in the plans folder; :class:`PlansMissing` names it when empty."""
        return read_plans(self.plans_dir)

    def plan(self, context: str) -> Plan:
        plans = self.plans()
        if context not in plans:
            raise UnknownContext(context, list(plans), self.plans_dir)
        return plans[context]

    def metric_source(self) -> MetricSource:
        if self.metrics is None:
            self.metrics = StoreEvidence()
        return self.metrics

    def engine(self) -> Engine:
        return self.control if self.control is not None else control_engine()


@dataclass
class Outcome:
    """What a transition did."""

    context: str
    from_phase: Phase
    to_phase: Phase
    gates: list[GateResult]
    forced: bool
    steps: dict[str, Any] = field(default_factory=dict)
    route_table_hash: str | None = None
    cutover: CutOverReport | None = None


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _migrate_service(plan: Plan) -> dict[str, Any]:
    settings = RelaySettings.from_env(plan.context)
    upgrade(plan.context, settings.service_url, module=plan.service_module)
    return {"service_database": "migrated to head"}


def _backfill(plan: Plan) -> dict[str, Any]:
    settings = RelaySettings.from_env(plan.context, phase=Phase.DUAL_WRITE)
    install_capture(relay_engine(settings.monolith_url), [plan.mapping])
    backfill = Backfill(settings)
    try:
        result = backfill.run(progress=True)
    finally:
        backfill.close()
    return {"backfill_rows": result.rows, "backfill_rows_per_s": round(result.rows_per_second)}


def _final_reconcile(plan: Plan) -> dict[str, Any]:
    settings = RelaySettings.from_env(plan.context)
    report = reconcile(
        plan.mapping, settings.monolith_url, settings.service_url, phase=plan.phase.value
    )
    record_run(report)
    if report.verdict != "clean":
        raise RuntimeError(
            f"final reconcile is {report.verdict}: run `strangler reconcile {plan.context}` "
            "for the report (and --repair), then advance again"
        )
    return {"final_reconcile": "clean"}


def _capture_off(plan: Plan) -> dict[str, Any]:
    """Back in shared no one reads the monolith's captured changes: stop capturing them."""
    relay = Relay(RelaySettings.from_env(plan.context))
    try:
        set_capture(relay.engines["monolith"], plan.context, enabled=False)
    finally:
        relay.close()
    return {"capture": "off"}


def _outbox_drain(plan: Plan) -> tuple[Drain, Callable[[], None]]:
    """A drain check over the outboxes of ``plan``'s context, and how to close it.

    The count is the relay's backlog (pending and in-flight events, read from the
    source outbox, whatever phase the relay serves); a dead letter aborts at once.
    """
    relay = Relay(RelaySettings.from_env(plan.context))

    def backlog(directions: list[Direction]) -> dict[Direction, Backlog]:
        try:
            return outbox_backlog(relay, directions)
        except StoreUnavailable as exc:
            raise OutboxNotDrained(f"an outbox is unreachable: {exc}") from exc

    def drain(sides: tuple[Side, ...], deadline: float) -> None:
        directions = [Direction.towards(side) for side in sides]
        while True:
            owed = backlog(directions)
            for direction, left in owed.items():
                if left.dead:
                    raise OutboxNotDrained(
                        f"{left.dead} dead-lettered events {direction}: requeue or repair "
                        f"them first (`strangler dualwrite status {plan.context}`)"
                    )
            waiting = {direction: left.open for direction, left in owed.items() if left.open}
            if not waiting:
                return
            if time.monotonic() >= deadline:
                owing = ", ".join(f"{n} {direction}" for direction, n in waiting.items())
                raise OutboxNotDrained(f"events still waiting: {owing}")
            time.sleep(0.01)

    return drain, relay.close


STEPS: dict[tuple[Phase, Phase], list[tuple[str, Step]]] = {
    (Phase.SHARED, Phase.DUAL_WRITE): [
        ("migrate the service database", _migrate_service),
        ("backfill", _backfill),
    ],
    (Phase.DUAL_WRITE, Phase.SPLIT): [("final reconcile", _final_reconcile)],
}
"""Work done before the cut-over, while the old phase still serves."""

AFTER_STEPS: dict[tuple[Phase, Phase], list[tuple[str, Step]]] = {
    (Phase.DUAL_WRITE, Phase.SHARED): [("capture off", _capture_off)],
}
"""Work done after the cut-over, once the new phase serves."""


def _run_steps(
    plan: Plan,
    source: Phase,
    target: Phase,
    table: dict[tuple[Phase, Phase], list[tuple[str, Step]]],
) -> dict[str, Any]:
    done: dict[str, Any] = {}
    for name, step in table.get((source, target), []):
        try:
            done.update(step(plan))
        except RollbackLosesData:
            raise
        except Exception as exc:
            raise TransitionFailed(plan.context, name, exc) from exc
    return done


def _cut_over(
    env: Environment, plan: Plan, target: Phase, *, force: bool, reason: str
) -> CutOverReport:
    """Move the live phase behind the write fence (:mod:`migration_plans.control.cutover`)."""
    path = plan_path(plan.context, env.plans_dir)
    saved_routes = env.routes_path.read_bytes() if env.routes_path is not None else None
    new_routes = None
    if env.routes_path is not None:
        # Rewritten and validated now, before the fence: inside it only the files change.
        try:
            new_routes = prepare_routes(env.routes_path, plan, target, env.plans())
        except Exception as exc:
            raise TransitionFailed(plan.context, "route table rewrite", exc) from exc

    def flip() -> str | None:
        set_phase(path, target)
        if env.routes_path is None or new_routes is None:
            return None
        atomic_write(env.routes_path, new_routes)
        return route_file_hash(env.routes_path)

    def restore() -> None:
        set_phase(path, plan.phase)
        if env.routes_path is not None and saved_routes is not None:
            atomic_write(env.routes_path, saved_routes.decode("utf-8"))

    drain, close = _outbox_drain(plan) if env.run_steps else (None, lambda: None)
    try:
        cutover = CutOver(
            env.engine(),
            plan,
            target,
            flip=flip,
            restore=restore,
            drain=drain,
            routes_hash=route_file_hash(env.routes_path),
            settings=env.cutover,
        )
        return cutover.run(force=force, reason=reason)
    finally:
        close()


def _record(env: Environment, outcome: Outcome, actor: str, reason: str) -> None:
    record_transition(
        env.engine(),
        Transition(
            context=outcome.context,
            from_phase=outcome.from_phase.value,
            to_phase=outcome.to_phase.value,
            actor=actor,
            forced=outcome.forced,
            reason=reason,
            gates={r.gate.metric: r.as_dict() for r in outcome.gates},
            route_table_hash=outcome.route_table_hash,
            cutover=None if outcome.cutover is None else outcome.cutover.as_dict(),
        ),
    )


def _rollback_loses_writes(plan: Plan, target: Phase) -> bool:
    """Whether moving back to ``target`` hands the truth to a side that was not kept current."""
    truth = target.source_of_truth
    if truth is plan.phase.source_of_truth:
        return False
    return truth not in plan.phase.synced_sides(plan.reverse_sync)


def check_gates(env: Environment, plan: Plan) -> tuple[Phase, list[GateResult]]:
    """The next phase and the gates guarding it, evaluated now."""
    target = plan.next_phase
    if target is None:
        raise NoTransition(f"{plan.context} is already in {plan.phase}: nothing to advance to")
    return target, evaluate(plan, target, env.metric_source())


def advance(
    env: Environment,
    context: str,
    *,
    actor: str | None = None,
    force: bool = False,
    reason: str = "",
    leave_out: bool | None = None,
) -> Outcome:
    """Move ``context`` to its next phase if its gates hold (or ``force`` with a ``reason``).

    ``force`` also leaves out replicas that are silent or do not acknowledge the current
    phase and route table (recorded); ``leave_out`` decides that separately when given.
    """
    if force and not reason.strip():
        raise ForceWithoutReason()
    plan = env.plan(context)
    target, results = check_gates(env, plan)
    failing = [result for result in results if not result.passed]
    if failing and not force:
        raise GatesFailed(context, target.value, failing)
    outcome = Outcome(context, plan.phase, target, results, forced=bool(failing))
    replicas = force if leave_out is None else leave_out
    _transition(env, plan, target, outcome, force=replicas, reason=reason)
    _record(env, outcome, _actor(actor), reason)
    return outcome


def _transition(
    env: Environment, plan: Plan, target: Phase, outcome: Outcome, *, force: bool, reason: str
) -> None:
    if env.run_steps:
        outcome.steps = _run_steps(plan, plan.phase, target, STEPS)
    outcome.cutover = _cut_over(env, plan, target, force=force, reason=reason)
    outcome.route_table_hash = outcome.cutover.route_hash
    if env.run_steps:
        outcome.steps.update(_run_steps(plan, plan.phase, target, AFTER_STEPS))


def rollback(
    env: Environment,
    context: str,
    *,
    actor: str | None = None,
    reason: str = "",
    force: bool = False,
) -> Outcome:
    """Move ``context`` back one phase; refused when that would lose writes.

    ``force`` (with a ``reason``) only leaves out replicas that do not acknowledge; it
    never overrides the check that the target side was kept current.
    """
    if force and not reason.strip():
        raise ForceWithoutReason()
    plan = env.plan(context)
    target = plan.phase.previous
    if target is None:
        raise NoTransition(f"{context} is in {plan.phase}: there is no earlier phase")
    if _rollback_loses_writes(plan, target):
        raise RollbackLosesData(
            f"{context}: rolling back {plan.phase} -> {target} without reverse sync would lose "
            f"every write made in {plan.phase} (the {target.source_of_truth} was not kept current)"
        )
    outcome = Outcome(context, plan.phase, target, gates=[], forced=force)
    _transition(env, plan, target, outcome, force=force, reason=reason)
    _record(env, outcome, _actor(actor), reason)
    return outcome


def plan_status(env: Environment) -> list[dict[str, Any]]:
    """Each context's phase, the gates of its next step evaluated now, its last transition.

    With the live phase: the published epoch and fence, and every registered replica
    acting for the context with the epoch and route table it serves.
    """
    rows = []
    states = read_states(env.engine())
    replicas = list_replicas(env.engine())
    routes = (
        route_file_hash(env.routes_path) if env.routes_path and env.routes_path.exists() else None
    )
    for context, plan in sorted(env.plans().items()):
        row: dict[str, Any] = {"context": context, "phase": plan.phase.value, "next": None}
        state = states.get(context)
        row["published"] = None if state is None else state.as_dict()
        row["route_hash"] = routes
        row["replicas"] = [r.as_dict() for r in replicas if r.serves(context)]
        try:
            target, results = check_gates(env, plan)
            row["next"] = target.value
            row["gates"] = [result.as_dict() for result in results]
            row["ready"] = all(result.passed for result in results)
        except NoTransition:
            row["gates"], row["ready"] = [], False
        last = last_transition(env.engine(), context)
        row["last_transition"] = (
            None
            if last is None
            else {"to": last.to_phase, "by": last.actor, "at": last.at.isoformat()}
        )
        rows.append(row)
    return rows
