"""Move a context between phases: gates, the work each transition needs, routes, history.

    outcome = advance(Environment.from_env(), "catalog", actor="alice")
    outcome = rollback(Environment.from_env(), "catalog", actor="alice")

Order matters: the plan's phase changes first, then the route table is rewritten and
validated under the new phase (so a proxy reloading in between never loads routes the
old phase forbids), then the transition is recorded. If the route rewrite fails the
plan's phase is put back.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from dualwrite.backfill import Backfill
from dualwrite.capture import install_capture, set_capture
from dualwrite.config import RelaySettings
from dualwrite.engines import relay_engine
from dualwrite.relay import Relay
from dualwrite.status import collect_status
from extracted_services.common.migrations import upgrade
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
from migration_plans.control.plan_file import read_plans, set_phase
from migration_plans.control.routing import apply_phase_to_routes
from migration_plans.core.control_db import control_engine
from migration_plans.core.phase import Phase
from migration_plans.core.plan import Plan
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


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _migrate_service(plan: Plan) -> dict[str, Any]:
    settings = RelaySettings.from_env(plan.context)
    upgrade(plan.context, settings.service_url)
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


def _drain_check(plan: Plan) -> dict[str, Any]:
    relay = Relay(RelaySettings.from_env(plan.context))
    try:
        status = collect_status(relay)
        waiting = status.service.pending + status.service.in_flight + status.service.dead
        if not status.service.reachable or waiting:
            raise RollbackLosesData(
                f"{plan.context}: {waiting} service-side events are not yet in the monolith "
                f"(or the service outbox is unreachable: {status.service.error}); let the relay "
                "drain them (`strangler dualwrite status`) before rolling back to shared"
            )
        set_capture(relay.engines["monolith"], plan.context, enabled=False)
    finally:
        relay.close()
    return {"service_outbox": "drained", "capture": "off"}


STEPS: dict[tuple[Phase, Phase], list[tuple[str, Step]]] = {
    (Phase.SHARED, Phase.DUAL_WRITE): [
        ("migrate the service database", _migrate_service),
        ("backfill", _backfill),
    ],
    (Phase.DUAL_WRITE, Phase.SPLIT): [("final reconcile", _final_reconcile)],
    (Phase.DUAL_WRITE, Phase.SHARED): [("drain the service outbox", _drain_check)],
}


def _run_steps(plan: Plan, source: Phase, target: Phase) -> dict[str, Any]:
    done: dict[str, Any] = {}
    for name, step in STEPS.get((source, target), []):
        try:
            done.update(step(plan))
        except RollbackLosesData:
            raise
        except Exception as exc:
            raise TransitionFailed(plan.context, name, exc) from exc
    return done


def _switch(
    env: Environment, plans: dict[str, Plan], plan: Plan, target: Phase
) -> tuple[Plan, str | None]:
    """Phase first, then routes; the phase is restored if the routes cannot follow."""
    path = plan_path(plan.context, env.plans_dir)
    updated = set_phase(path, target)
    if env.routes_path is None:
        return updated, None
    try:
        digest = apply_phase_to_routes(env.routes_path, updated, target, plans)
    except Exception as exc:
        set_phase(path, plan.phase)
        raise TransitionFailed(plan.context, "route table rewrite", exc) from exc
    return updated, digest


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
) -> Outcome:
    """Move ``context`` to its next phase if its gates hold (or ``force`` with a ``reason``)."""
    if force and not reason.strip():
        raise ForceWithoutReason()
    plan = env.plan(context)
    target, results = check_gates(env, plan)
    failing = [result for result in results if not result.passed]
    if failing and not force:
        raise GatesFailed(context, target.value, failing)
    outcome = Outcome(context, plan.phase, target, results, forced=bool(failing))
    if env.run_steps:
        outcome.steps = _run_steps(plan, plan.phase, target)
    _, outcome.route_table_hash = _switch(env, env.plans(), plan, target)
    _record(env, outcome, _actor(actor), reason)
    return outcome


def rollback(
    env: Environment, context: str, *, actor: str | None = None, reason: str = ""
) -> Outcome:
    """Move ``context`` back one phase; refused when that would lose writes."""
    plan = env.plan(context)
    target = plan.phase.previous
    if target is None:
        raise NoTransition(f"{context} is in {plan.phase}: there is no earlier phase")
    if _rollback_loses_writes(plan, target):
        raise RollbackLosesData(
            f"{context}: rolling back {plan.phase} -> {target} without reverse sync would lose "
            f"every write made in {plan.phase} (the {target.source_of_truth} was not kept current)"
        )
    outcome = Outcome(context, plan.phase, target, gates=[], forced=False)
    if env.run_steps:
        outcome.steps = _run_steps(plan, plan.phase, target)
    _, outcome.route_table_hash = _switch(env, env.plans(), plan, target)
    _record(env, outcome, _actor(actor), reason)
    return outcome


def plan_status(env: Environment) -> list[dict[str, Any]]:
    """Each context's phase, the gates of its next step evaluated now, its last transition."""
    rows = []
    for context, plan in sorted(env.plans().items()):
        row: dict[str, Any] = {"context": context, "phase": plan.phase.value, "next": None}
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
