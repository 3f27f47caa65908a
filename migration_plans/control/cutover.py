"""The live cut-over of one context: every replica acknowledges, writes are fenced, nothing fails.

A transition moves the published phase step by step; each step waits until every live
replica of the context has acknowledged it (:mod:`migration_plans.control.acks`):

1. **agree**: every live replica serves the current epoch and route table. A silent
   replica, or one still on another table when ``ack_timeout`` passes, stops the
   transition before anything moved, unless the operator leaves it out (``--force
   --reason``; recorded).
2. **fence**: publish the old phase with the context's writes fenced. Proxies hold new
   unsafe requests (reads flow) and acknowledge once no write of the context is in
   flight.
3. **drain**: the outboxes the old phase syncs drain to zero.
4. **flip**: the plan file and the route table change, the new phase is published
   (still fenced); services, relays and proxies switch and acknowledge it (proxies
   with the new table's hash).
5. **drain**: the outboxes the new phase syncs drain to zero (the new owner has every
   change before it takes a write).
6. **lift**: the new phase is published unfenced; proxies release the held writes to
   the new owner.

Steps 2-5 must finish within ``fence_timeout`` of the fence going up. If one cannot (a
replica died, a NACK, an outbox that does not drain), the cut-over aborts: plan file
and route table are put back, the old phase is published unfenced, and the held writes
go to the old owner. Proxies also release a fence on their own ``fence_grace`` after
that deadline, in case the control plane itself dies mid-fence.

    report = CutOver(engine, plan, Phase.SPLIT, flip=..., restore=..., drain=...).run()
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from migration_plans.control.acks import AckTally, Expectation, wait_for_acks
from migration_plans.control.exceptions import CutOverAborted, ReplicasNotReady
from migration_plans.core.live_phase import PhaseState, publish, seed
from migration_plans.core.phase import Phase, Side
from migration_plans.core.plan import Plan
from migration_plans.core.replicas import forget_replicas

__all__ = ["CutOver", "CutOverReport", "CutOverSettings", "Drain", "Flip", "route_file_hash"]

Flip = Callable[[], str | None]
"""Writes the new phase into the plan file and the route table; the table's sha256 (or None)."""
Drain = Callable[[tuple[Side, ...], float], None]
"""Waits (until a monotonic deadline) for the outboxes syncing towards these sides to be empty;
raises :class:`OutboxNotDrained` when they are not."""


class OutboxNotDrained(RuntimeError):
    """An outbox still holds events (or dead letters) when a fenced step needs it empty."""


@dataclass(frozen=True)
class CutOverSettings:
    """How long each part of a cut-over may take (seconds)."""

    fence_timeout: float = 2.0
    ack_timeout: float = 30.0
    fence_grace: float = 1.0
    lift_ack_timeout: float = 5.0


@dataclass
class CutOverReport:
    """What a cut-over did: its epochs, how long writes were held, who was left out."""

    context: str
    from_phase: Phase
    to_phase: Phase
    epochs: dict[str, int] = field(default_factory=dict)
    step_ms: dict[str, float] = field(default_factory=dict)
    fence_held_ms: float | None = None
    left_out: list[dict[str, Any]] = field(default_factory=list)
    route_hash: str | None = None
    lift_acknowledged: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.from_phase.value,
            "to": self.to_phase.value,
            "epochs": self.epochs,
            "step_ms": {name: round(ms, 1) for name, ms in self.step_ms.items()},
            "fence_held_ms": None if self.fence_held_ms is None else round(self.fence_held_ms, 1),
            "left_out": self.left_out,
            "route_hash": self.route_hash,
            "lift_acknowledged": self.lift_acknowledged,
        }


def route_file_hash(path: Path | None) -> str | None:
    """The full sha256 of a route file as proxies report it (None: no route table)."""
    if path is None:
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


class CutOver:
    """One context's move from ``plan.phase`` to ``target`` (module docstring: the steps)."""

    def __init__(
        self,
        engine: Engine,
        plan: Plan,
        target: Phase,
        *,
        flip: Flip,
        restore: Callable[[], None],
        drain: Drain | None,
        routes_hash: str | None,
        settings: CutOverSettings | None = None,
    ) -> None:
        self.engine = engine
        self.plan = plan
        self.context = plan.context
        self.source = plan.phase
        self.target = target
        self.flip = flip
        self.restore = restore
        self.drain = drain
        self.routes_hash = routes_hash
        self.settings = settings or CutOverSettings()
        self.report = CutOverReport(self.context, self.source, target)
        self.left_out: set[str] = set()

    # -- 1. agree ------------------------------------------------------------------------

    def agree(self, *, force: bool, reason: str) -> PhaseState:
        """Every live replica serves the current epoch and table; or ``force`` leaves it out."""
        current = seed(self.engine, self.context, self.source)
        if current.phase is not self.source:
            raise ReplicasNotReady(
                self.context,
                f"the published phase is {current.phase} (epoch {current.epoch}) but the plan "
                f"says {self.source}; publish the plan's phase or fix the plan file first",
            )
        expected = Expectation(self.context, current.epoch, self.routes_hash)
        tally = wait_for_acks(self.engine, expected, timeout=self.settings.ack_timeout)
        if tally.complete:
            return current
        if not force:
            raise ReplicasNotReady(
                self.context,
                "these replicas have not acknowledged the current phase and route table "
                f"(leave them out with --force --reason):\n{tally.describe()}",
            )
        self._leave_out(tally, reason)
        return current

    def _leave_out(self, tally: AckTally, reason: str) -> None:
        for group, replicas in (
            ("silent", tally.silent),
            ("not acknowledged", tally.waiting),
            ("rejected the route table", tally.rejected),
        ):
            for replica in replicas:
                self.left_out.add(replica.instance)
                self.report.left_out.append(
                    {"instance": replica.instance, "why": group, "reason": reason}
                )
        forget_replicas(self.engine, [r.instance for r in tally.silent])

    # -- 2-6. fence, drain, flip, drain, lift --------------------------------------------

    def run(self, *, force: bool = False, reason: str = "") -> CutOverReport:
        """Agree, then move the phase behind the write fence; :class:`CutOverAborted` if it cannot."""
        started = time.monotonic()
        self.agree(force=force, reason=reason)
        self.report.step_ms["agree"] = (time.monotonic() - started) * 1000
        fence_up = time.monotonic()
        deadline = fence_up + self.settings.fence_timeout
        fence_until = time.time() + self.settings.fence_timeout + self.settings.fence_grace
        flipped = False
        try:
            self._step("fence", self.source, fence_until, self.routes_hash, deadline)
            self._drain("drain before flip", self.source, deadline)
            flip_started = time.monotonic()
            self.report.route_hash = self.flip()
            flipped = True
            self.report.step_ms["rewrite"] = (time.monotonic() - flip_started) * 1000
            routes = self.report.route_hash or self.routes_hash
            self._step("flip", self.target, fence_until, routes, deadline)
            self._drain("drain after flip", self.target, deadline)
        except _StepFailed as failure:
            self._abort(flipped, failure)
        lifted = publish(self.engine, self.context, self.target)
        self.report.fence_held_ms = (time.monotonic() - fence_up) * 1000
        self.report.epochs["lift"] = lifted.epoch
        tally = wait_for_acks(
            self.engine,
            Expectation(self.context, lifted.epoch, self.report.route_hash or self.routes_hash),
            timeout=self.settings.lift_ack_timeout,
            left_out=self.left_out,
        )
        self.report.lift_acknowledged = tally.complete
        return self.report

    def _step(
        self,
        name: str,
        phase: Phase,
        fence_until: float,
        route_hash: str | None,
        deadline: float,
    ) -> None:
        started = time.monotonic()
        state = publish(
            self.engine, self.context, phase, fence_seconds=max(0.0, fence_until - time.time())
        )
        self.report.epochs[name] = state.epoch
        tally = wait_for_acks(
            self.engine,
            Expectation(self.context, state.epoch, route_hash),
            timeout=max(0.0, deadline - time.monotonic()),
            left_out=self.left_out,
        )
        self.report.step_ms[name] = (time.monotonic() - started) * 1000
        if not tally.complete:
            raise _StepFailed(name, tally.describe() or "not acknowledged in time")

    def _drain(self, name: str, phase: Phase, deadline: float) -> None:
        sides = phase.synced_sides(self.plan.reverse_sync)
        if self.drain is None or not sides:
            return
        started = time.monotonic()
        try:
            self.drain(sides, deadline)
        except OutboxNotDrained as exc:
            raise _StepFailed(name, str(exc)) from exc
        finally:
            self.report.step_ms[name] = (time.monotonic() - started) * 1000

    def _abort(self, flipped: bool, failure: _StepFailed) -> None:
        """Put the plan file, the route table and the published phase back; release the fence."""
        if flipped:
            self.restore()
        state = publish(self.engine, self.context, self.source)
        tally = wait_for_acks(
            self.engine,
            Expectation(self.context, state.epoch, self.routes_hash),
            timeout=self.settings.lift_ack_timeout,
            left_out=self.left_out,
        )
        after = "" if tally.complete else f"\nnot yet back on {self.source}:\n{tally.describe()}"
        raise CutOverAborted(
            self.context,
            failure.step,
            f"{failure.why}\n{self.context} stays in {self.source} (epoch {state.epoch}); the "
            f"held writes went where {self.source} sends them{after}",
        )


class _StepFailed(Exception):
    def __init__(self, step: str, why: str) -> None:
        super().__init__(f"{step}: {why}")
        self.step = step
        self.why = why
