"""Gate metrics read from the real stores: shadow results, reconciler history, relay status.

    source = StoreEvidence()
    source.observe(plan, "reconcile_clean_runs")  # Observation(value=3, ...)

A store that cannot be reached gives an unknown value (the gate then fails) with the
reason in ``Observation.source``, never an exception: ``plan status`` must always answer.
"""

from __future__ import annotations

import logging

from dualwrite.config import RelaySettings
from dualwrite.relay import Relay
from dualwrite.status import ContextStatus, collect_status
from migration_plans.control.gates import Observation
from migration_plans.core.plan import Plan
from reconciler.history import clean_streak
from strangler_proxy.shadow.backend import shadow_counts

log = logging.getLogger("strangler.plans")


class StoreEvidence:
    """:class:`migration_plans.control.gates.MetricSource` over the stores the other packages write."""

    def __init__(self, *, shadow_since: float | None = None) -> None:
        self.shadow_since = shadow_since
        self._relay_status: dict[str, ContextStatus] = {}

    def observe(self, plan: Plan, metric: str) -> Observation:
        reader = getattr(self, f"_{metric}", None)
        if reader is None:
            return Observation(None, source=f"unknown metric {metric!r}")
        try:
            observation: Observation = reader(plan)
        except Exception as exc:  # any store failure means "unknown"
            log.warning("cannot read %s for %s: %s", metric, plan.context, exc)
            return Observation(None, source=f"unavailable: {str(exc).splitlines()[0]}")
        return observation

    def _shadow_match_rate(self, plan: Plan) -> Observation:
        counts = shadow_counts(context=plan.context, since=self.shadow_since)
        # samples: copies compared; shed (kept back under load) and dropped were not
        detail = f"compared; {counts.shed} shed, {counts.dropped} dropped"
        return Observation(
            counts.match_rate, samples=counts.compared, source="shadow store", detail=detail
        )

    def _reconcile_clean_runs(self, plan: Plan) -> Observation:
        return Observation(float(clean_streak(plan.context)), source="reconciler history")

    def _status(self, plan: Plan) -> ContextStatus:
        if plan.context not in self._relay_status:
            relay = Relay(RelaySettings.from_env(plan.context))
            try:
                self._relay_status[plan.context] = collect_status(relay)
            finally:
                relay.close()
        return self._relay_status[plan.context]

    def _relay_lag_p99_ms(self, plan: Plan) -> Observation:
        status = self._status(plan)
        sides = [side for side in (status.monolith, status.service) if side.reachable]
        if len(sides) < 2:
            return Observation(None, source="relay: an outbox is unreachable")
        lags = [side.lag_p99_ms for side in sides if side.lag_p99_ms is not None]
        applied = sum(side.applied for side in sides)
        return Observation(max(lags) if lags else 0.0, samples=applied, source="relay outboxes")

    def _dead_letters(self, plan: Plan) -> Observation:
        status = self._status(plan)
        if not (status.monolith.reachable and status.service.reachable):
            return Observation(None, source="relay: an outbox is unreachable")
        return Observation(float(status.monolith.dead + status.service.dead), source="dead letters")
