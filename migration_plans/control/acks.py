"""Waiting until every live replica of a context acknowledges what the control plane published.

A replica has acknowledged a step when it reports the step's epoch (or a newer one) for
the context and, for a proxy, serves the route table the step expects. A silent replica
(no heartbeat for ``STRANGLER_REPLICA_SILENT_AFTER`` seconds) has not; only an operator
can leave it out (``--force --reason``). A proxy that refused the expected table NACKs,
which ends the wait at once.

    expected = Expectation("catalog", epoch=7, route_hash="9f2c...")
    tally = wait_for_acks(engine, expected, timeout=2.0)
    if not tally.complete: ...
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from migration_plans.core.replicas import Replica, Role, list_replicas

__all__ = ["AckTally", "Expectation", "tally_acks", "wait_for_acks"]


@dataclass(frozen=True)
class Expectation:
    """What every replica of ``context`` must serve: ``epoch`` or newer, and proxies ``route_hash``."""

    context: str
    epoch: int
    route_hash: str | None = None

    def met_by(self, replica: Replica) -> bool:
        served = replica.epoch(self.context)
        if served is None or served < self.epoch:
            return False
        if replica.role is Role.PROXY and self.route_hash is not None:
            return replica.ack.route_hash == self.route_hash
        return True

    def rejected_by(self, replica: Replica) -> bool:
        nack = replica.ack.nack
        return (
            replica.role is Role.PROXY
            and self.route_hash is not None
            and nack is not None
            and nack.route_hash == self.route_hash
        )


@dataclass
class AckTally:
    """Where the replicas of a context stand against an :class:`Expectation`."""

    expectation: Expectation
    acknowledged: list[Replica] = field(default_factory=list)
    waiting: list[Replica] = field(default_factory=list)
    silent: list[Replica] = field(default_factory=list)
    rejected: list[Replica] = field(default_factory=list)
    left_out: list[Replica] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not (self.waiting or self.silent or self.rejected)

    def describe(self) -> str:
        """One line per replica that holds the step up, saying what it serves."""
        lines = []
        for replica in self.rejected:
            assert replica.ack.nack is not None
            lines.append(
                f"{_name(replica)} REJECTED route table {replica.ack.nack.route_hash[:12]}: "
                f"{replica.ack.nack.reason}"
            )
        for replica in self.silent:
            age = time.time() - replica.heartbeat_at
            lines.append(f"{_name(replica)} is silent (no heartbeat for {age:.0f}s)")
        for replica in self.waiting:
            lines.append(f"{_name(replica)} has not acknowledged: {self._serves(replica)}")
        return "\n".join(lines)

    def _serves(self, replica: Replica) -> str:
        wanted = self.expectation
        served = replica.epoch(wanted.context)
        text = f"serves epoch {served if served is not None else 'none'} (wanted {wanted.epoch})"
        if replica.role is Role.PROXY and wanted.route_hash is not None:
            have = (replica.ack.route_hash or "none")[:12]
            text += f", route table {have} (wanted {wanted.route_hash[:12]})"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "context": self.expectation.context,
            "epoch": self.expectation.epoch,
            "route_hash": self.expectation.route_hash,
            "acknowledged": [r.instance for r in self.acknowledged],
            "waiting": [r.instance for r in self.waiting],
            "silent": [r.instance for r in self.silent],
            "rejected": [r.instance for r in self.rejected],
            "left_out": [r.instance for r in self.left_out],
        }


def _name(replica: Replica) -> str:
    where = f" at {replica.address}" if replica.address else ""
    return f"{replica.role.value} {replica.instance}{where}"


def tally_acks(
    replicas: list[Replica],
    expected: Expectation,
    *,
    left_out: Collection[str] = (),
    now: float | None = None,
) -> AckTally:
    """Sort the replicas acting for the context by whether they meet ``expected``."""
    moment = time.time() if now is None else now
    tally = AckTally(expected)
    for replica in replicas:
        if not replica.serves(expected.context):
            continue
        if replica.instance in left_out:
            tally.left_out.append(replica)
        elif replica.silent(moment):
            tally.silent.append(replica)  # what it served last says nothing about now
        elif expected.met_by(replica):
            tally.acknowledged.append(replica)
        elif expected.rejected_by(replica):
            tally.rejected.append(replica)
        else:
            tally.waiting.append(replica)
    return tally


def wait_for_acks(
    engine: Engine,
    expected: Expectation,
    *,
    timeout: float,
    left_out: Collection[str] = (),
    interval: float = 0.02,
) -> AckTally:
    """Poll the registry until no live replica is still working on the step, or ``timeout``.

    Returns the last tally; the caller decides (``tally.complete``). A NACK returns at
    once; a silent replica is not waited for (it is not live) but stays in the tally.
    """
    deadline = time.monotonic() + timeout
    while True:
        tally = tally_acks(list_replicas(engine), expected, left_out=left_out)
        if not tally.waiting or tally.rejected or time.monotonic() >= deadline:
            return tally
        time.sleep(interval)
