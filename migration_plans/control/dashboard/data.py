"""What the dashboard shows, gathered from the stores the other packages write.

Every section is read on its own: a store that is down gives that section an
``error`` and leaves the others intact. Collection is blocking (database and Redis
round trips), so the dashboard runs it in a worker thread (:mod:`migration_plans.control.dashboard.app`).

    sources = Sources(view)      # view: the proxy's strangler_proxy.introspection.ProxyView
    data = sources.collect()     # JSON-ready dict: contexts, routes, shadow, reconciler, dualwrite, sagas

Sources: plans and gates (``STRANGLER_PLANS_DIR``, :class:`migration_plans.control.evidence.StoreEvidence`),
transition history and reconciler runs (``STRANGLER_CONTROL_DB_URL``), shadow results
(:func:`strangler_proxy.shadow.backend.open_store`: Redis or the control-plane database), relay status (each context's
database URLs), the monolith's sagas (:mod:`dualwrite.sagas`, ``STRANGLER_MONOLITH_DATABASE_URL``),
and the proxy's serving table and request counters (through its ``ProxyView``).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from dualwrite.config import RelaySettings
from dualwrite.relay import Relay
from dualwrite.sagas import STUCK_AFTER_S, list_sagas, monolith_engine, saga_counts
from dualwrite.status import collect_status
from migration_plans.control.evidence import StoreEvidence
from migration_plans.control.history import last_transition
from migration_plans.control.transitions import Environment, check_gates
from migration_plans.core.http import HTTP_METHODS
from migration_plans.core.live_phase import read_state
from migration_plans.core.plan import Plan
from migration_plans.core.replicas import list_replicas
from reconciler.history import load_report, recent_runs, run_tables, store
from strangler_proxy.introspection import ProxyView
from strangler_proxy.routetable import Route
from strangler_proxy.shadow.backend import open_store
from strangler_proxy.shadow.exchange import CapturedResponse
from strangler_proxy.shadow.store import ShadowResults

log = logging.getLogger("strangler.dashboard")

PHASES = ("shared", "dual_write", "split")
SHADOW_WINDOW = 6 * 3600.0  # seconds of match-rate history plotted
RATE_WINDOW = 30.0  # seconds over which request rates are averaged
RUNS_PLOTTED = 40  # reconciler runs per table
SAMPLE_BODY_LIMIT = 16 * 1024
SAGAS_SHOWN = 10  # saga rows on the page, stuck ones first

Section = dict[str, Any]


def _guarded(name: str, read: Callable[[], Section]) -> Section:
    """``read()``, or ``{"error": ...}`` when its store fails (the page must always answer)."""
    try:
        return read()
    except Exception as exc:  # any store failure is shown, never raised
        log.warning("dashboard: cannot read %s: %s", name, exc)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return {"error": f"{type(exc).__name__}: {first}"[:300]}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _timestamp(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class RequestRates:
    """Per route and upstream requests per second, from the proxy's own counters.

    Rates are the counters' increase since the oldest sample kept (at most ``window``
    seconds before the newest once there are three): :class:`Sources` takes its first
    sample when it is built, so the first poll shows the rate since the dashboard
    (and with it the proxy) started, and later polls the rate over the last ``window``.
    """

    def __init__(self, window: float = RATE_WINDOW) -> None:
        self.window = window
        self._history: deque[tuple[float, dict[tuple[str, str], float]]] = deque()
        self._lock = threading.Lock()

    def update(
        self, totals: dict[tuple[str, str], float], now: float
    ) -> dict[tuple[str, str], float]:
        """Record ``totals`` (counter values) seen at ``now``; rates since the oldest kept."""
        with self._lock:
            self._history.append((now, totals))
            while len(self._history) > 2 and now - self._history[1][0] >= self.window:
                self._history.popleft()
            then, before = self._history[0]
        if now - then <= 0:
            return {}
        return {
            key: max(0.0, total - before.get(key, 0.0)) / (now - then)
            for key, total in totals.items()
        }


def open_shadow_store() -> ShadowResults | None:
    """The store the proxy's mirror writes to (one selection rule: :mod:`~strangler_proxy.shadow.backend`)."""
    return open_store()


class Sources:
    """Reads every section of the dashboard (blocking; run it off the event loop)."""

    def __init__(
        self,
        view: ProxyView,
        *,
        shadow: Callable[[], ShadowResults | None] = open_shadow_store,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.view = view
        self.clock = clock
        self.rates = RequestRates()
        # The counters as the dashboard starts (it is mounted when the proxy starts): the
        # first poll already has an interval to divide by, instead of showing no rate.
        self.rates.update(view.request_totals(), clock())
        self._open_shadow = shadow
        self._shadow: ShadowResults | None = None

    def collect(self) -> dict[str, Any]:
        """The whole payload (JSON-ready); ``timings_ms`` says what each section cost."""
        now = self.clock()
        timings: dict[str, float] = {}

        def timed(name: str, read: Callable[[], Any]) -> Any:
            started = time.perf_counter()
            try:
                return read()
            finally:
                timings[name] = round((time.perf_counter() - started) * 1000, 1)

        plans = timed("contexts", lambda: _guarded("plans", self._plans))
        plan_map: dict[str, Plan] = plans.pop("plans", {})
        data: dict[str, Any] = {
            "generated_at": now,
            "contexts": plans.get("contexts", []),
            "contexts_error": plans.get("error"),
            "routes": timed("routes", lambda: _guarded("routes", lambda: self._routes(now))),
            "shadow": timed(
                "shadow", lambda: _guarded("shadow", lambda: self._shadow_section(now, plan_map))
            ),
            "reconciler": timed(
                "reconciler",
                lambda: _guarded("reconciler", lambda: self._reconciler(list(plan_map))),
            ),
            "dualwrite": timed("dualwrite", lambda: [_relay_section(name) for name in plan_map]),
            "sagas": timed("sagas", lambda: _guarded("sagas", _sagas)),
        }
        data["timings_ms"] = timings
        data["took_ms"] = round(sum(timings.values()), 1)
        return data

    # -- plans, gates, transitions -----------------------------------------------------

    def _plans(self) -> Section:
        env = Environment.from_env()
        env.metrics = StoreEvidence()
        plans = env.plans()
        contexts = [_context_card(env, plan) for _, plan in sorted(plans.items())]
        return {"contexts": contexts, "plans": plans}

    # -- the route table ----------------------------------------------------------------

    def _routes(self, now: float) -> Section:
        table = self.view.table()
        error = table.last_reload_error
        rates = self.rates.update(self.view.request_totals(), now)
        routes = []
        for context, group in table.contexts.items():
            for route in group:
                routes.append(_route_row(context, route, rates))
        return {
            "version": table.version,
            "hash": table.hash,
            "source": table.source,
            "generation": table.generation,
            "loaded_at": table.loaded_at,
            "default_upstream": table.default_upstream,
            "last_reload_error": None
            if error is None
            else {"at": error.at, "issues": list(error.issues)},
            "routes": routes,
        }

    # -- shadow results -----------------------------------------------------------------

    def _store(self) -> ShadowResults | None:
        if self._shadow is None:
            self._shadow = self._open_shadow()
        return self._shadow

    def _shadow_section(self, now: float, plans: dict[str, Plan]) -> Section:
        store = self._store()
        if store is None:
            return {"configured": False, "routes": []}
        since = now - SHADOW_WINDOW
        thresholds = _shadow_thresholds(plans.values())
        routes = []
        for route, context in sorted(store.routes().items()):
            series = store.series(route, since=since)
            total = store.counts(route=route, since=since)
            samples = store.samples(route, since=since, limit=1)
            routes.append(
                {
                    "route": route,
                    "context": context,
                    "counts": total.to_dict(),
                    "series": [[at, c.match_rate, c.compared] for at, c in series],
                    "threshold": thresholds.get(context),
                    "top_fields": [[path, n] for path, n in store.top_fields(route, since=since)],
                    "sample": _sample(samples[0]) if samples else None,
                }
            )
        return {"configured": True, "since": since, "routes": routes}

    # -- reconciler history -------------------------------------------------------------

    def _reconciler(self, contexts: list[str]) -> Section:
        engine = store()
        query = (
            sa.select(run_tables)
            .where(run_tables.c.context.in_(contexts))
            .order_by(run_tables.c.finished_at.desc())
            .limit(RUNS_PLOTTED * 8)
        )
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        tables: dict[tuple[str, str], list[list[Any]]] = {}
        for row in reversed(rows):
            divergent = row["missing_in_service"] + row["missing_in_monolith"] + row["differing"]
            points = tables.setdefault((row["context"], row["table_name"]), [])
            points.append([_timestamp(row["finished_at"]), int(divergent), row["verdict"]])
        last_runs = []
        for context in contexts:
            found = recent_runs(context, limit=1)
            if found:
                last_runs.append(_run_details(found[0], load_report(found[0].run_id)))
        return {
            "tables": [
                {"context": ctx, "table": name, "points": points[-RUNS_PLOTTED:]}
                for (ctx, name), points in sorted(tables.items())
            ],
            "last_runs": last_runs,
        }


def _context_card(env: Environment, plan: Plan) -> dict[str, Any]:
    card: dict[str, Any] = {
        "context": plan.context,
        "phase": plan.phase.value,
        "next": None,
        "gates": [],
        "ready": False,
        "last_transition": None,
    }
    if plan.next_phase is not None:
        target, results = check_gates(env, plan)
        card["next"] = target.value
        card["gates"] = [
            {
                "gate": str(result.gate),
                "metric": result.gate.metric,
                "op": result.gate.op,
                "threshold": result.gate.value,
                "min_samples": result.gate.min_samples,
                "value": result.observation.value,
                "samples": result.observation.samples,
                "source": result.observation.source,
                "passed": result.passed,
            }
            for result in results
        ]
        card["ready"] = all(result.passed for result in results)
    live = _guarded("replicas", lambda: _live(env, plan.context))
    card["published"] = live.get("published")
    card["replicas"] = live.get("replicas", [])
    if "error" in live:
        card["replicas_error"] = live["error"]
    last = _guarded("history", lambda: _last(env, plan.context))
    card["last_transition"] = last.get("transition")
    if "error" in last:
        card["history_error"] = last["error"]
    return card


def _live(env: Environment, context: str) -> Section:
    """The published phase of ``context`` and every replica acting for it."""
    state = read_state(env.engine(), context)
    replicas = list_replicas(env.engine(), context=context)
    return {
        "published": None if state is None else state.as_dict(),
        "replicas": [replica.as_dict() for replica in replicas],
    }


def _last(env: Environment, context: str) -> Section:
    found = last_transition(env.engine(), context)
    if found is None:
        return {"transition": None}
    return {
        "transition": {
            "from": found.from_phase,
            "to": found.to_phase,
            "by": found.actor,
            "at": _iso(found.at),
            "forced": found.forced,
            "reason": found.reason,
        }
    }


def _route_row(context: str, route: Route, rates: dict[tuple[str, str], float]) -> dict[str, Any]:
    if route.canary is not None:
        split = [[name, weight] for name, weight in route.canary.split.items()]
    else:
        split = [[route.upstream, 100.0]]
    served = {up: rps for (name, up), rps in rates.items() if name == route.name}
    total = sum(served.values()) if rates else None
    return {
        "name": route.name,
        "context": context,
        "match": route.path or f"{route.prefix}*",
        "methods": ["any"] if route.methods >= HTTP_METHODS else sorted(route.methods),
        "split": split,
        "shadow": route.shadow.upstream if route.shadow is not None else None,
        "fallback": bool(route.fallback),
        "rate": None if total is None else round(total, 3),
        "served": {up: round(rps, 3) for up, rps in sorted(served.items())},
    }


def _shadow_thresholds(plans: Iterable[Plan]) -> dict[str, float]:
    found = {}
    for plan in plans:
        for gate in plan.gates.dual_write + plan.gates.split:
            if gate.metric == "shadow_match_rate":
                found[plan.context] = gate.value
    return found


def _body_text(document: dict[str, Any] | None) -> str:
    """A response body from a stored sample, pretty-printed when it is JSON."""
    if not document:
        return ""
    if document.get("body_truncated"):
        return "(body too large to keep)"
    try:
        raw = CapturedResponse.from_dict(document).decoded_body()
    except (KeyError, ValueError, TypeError):
        raw = base64.b64decode(document.get("body_b64", "") or b"")
    try:
        text = json.dumps(json.loads(raw), indent=2, sort_keys=True, ensure_ascii=False)
    except ValueError:
        text = raw.decode("utf-8", "replace")
    return text[:SAMPLE_BODY_LIMIT]


def _sample(sample: dict[str, Any]) -> dict[str, Any]:
    request = sample.get("request") or {}
    primary, candidate = sample.get("primary"), sample.get("candidate")
    return {
        "at": sample.get("at"),
        "kind": sample.get("kind"),
        "error": sample.get("error") or "",
        "method": request.get("method", ""),
        "target": request.get("target") or request.get("path", ""),
        "primary_status": primary.get("status") if primary else None,
        "candidate_status": candidate.get("status") if candidate else None,
        "primary_body": _body_text(primary),
        "candidate_body": _body_text(candidate),
        "differences": sample.get("differences", [])[:50],
    }


def _run_details(summary: Any, report: Any) -> dict[str, Any]:
    tables = []
    for table in report.tables if report is not None else []:
        top = sorted(table.field_totals.items(), key=lambda item: -item[1])[:5]
        tables.append(
            {
                "name": table.name,
                "verdict": str(table.verdict),
                "monolith_rows": table.monolith_rows,
                "service_rows": table.service_rows,
                "missing_in_service": table.missing_in_service,
                "missing_in_monolith": table.missing_in_monolith,
                "differing": table.differing,
                "in_flight": table.in_flight,
                "fields": [[name, n] for name, n in top],
                "hints": list(table.hints)[:3],
                "error": table.error,
            }
        )
    return {
        "run_id": summary.run_id,
        "context": summary.context,
        "phase": summary.phase,
        "verdict": summary.verdict,
        "started_at": _iso(summary.started_at),
        "seconds": round(summary.seconds, 2),
        "executor": summary.executor,
        "divergent": summary.divergent,
        "tables": tables,
    }


def _relay_section(context: str) -> Section:
    return {"context": context, **_guarded(f"relay {context}", lambda: _relay(context))}


def _relay(context: str) -> Section:
    relay = Relay(RelaySettings.from_env(context))
    try:
        status = collect_status(relay, sample=500)
    finally:
        relay.close()
    data = status.as_dict()
    data.pop("context", None)
    data.pop("backfill", None)
    return data


def _sagas() -> Section:
    """Sagas per state and kind, and the first :data:`SAGAS_SHOWN`, stuck ones first."""
    engine = monolith_engine()
    try:
        counts = saga_counts(engine)
        sagas = list_sagas(engine, limit=SAGAS_SHOWN)
    finally:
        engine.dispose()
    return {
        "counts": counts.as_dict(),
        "stuck_after_s": STUCK_AFTER_S,
        "sagas": [saga.as_dict() for saga in sagas],
    }
