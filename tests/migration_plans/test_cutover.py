"""The cut-over protocol against replicas that follow the published phase and acknowledge.

The replicas here are threads running the real :class:`PhaseFollower` and
:class:`ReplicaReporter` on a SQLite control database; a "proxy" reports the hash of the
route file it reads at each epoch, as the real proxy does. Real processes are covered
by the phase-replay tests.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from migration_plans.control.cutover import CutOverSettings
from migration_plans.control.exceptions import CutOverAborted, ReplicasNotReady
from migration_plans.control.history import transitions
from migration_plans.control.processes import wait_until
from migration_plans.control.transitions import Environment, advance, rollback
from migration_plans.core.database import engine as make_engine
from migration_plans.core.live_phase import PhaseFollower, PhaseState, read_state
from migration_plans.core.phase import Phase
from migration_plans.core.plan import load_plan
from migration_plans.core.replicas import Ack, Nack, ReplicaReporter, Role, list_replicas
from migration_plans.core.settings import TEMPLATES_DIR
from tests.migration_plans.test_transitions import GOOD, ROUTES


class SimulatedReplica:
    """Follows the phase of ``catalog`` and acknowledges every epoch it sees."""

    def __init__(self, url: str, role: Role, routes: Path | None = None) -> None:
        self.routes = routes
        self.epoch = 0
        self.phases: list[Phase] = []
        self.route_hash: str | None = None
        self.nack: Nack | None = None
        self.refuse: set[str] = set()  # route hashes this replica rejects
        self.acking = threading.Event()
        self.acking.set()
        self.reporter = ReplicaReporter(
            url,
            role,
            context="" if role is Role.PROXY else "catalog",
            snapshot=self.ack,
            interval=0.2,
        )
        self.follower = PhaseFollower(url, self.changed, contexts=["catalog"])

    def start(self) -> SimulatedReplica:
        self.reporter.start()
        self.follower.start()
        return self

    def ack(self) -> Ack:
        return Ack(epochs={"catalog": self.epoch}, route_hash=self.route_hash, nack=self.nack)

    def changed(self, state: PhaseState) -> None:
        if not self.acking.is_set():
            return
        if self.routes is not None:
            digest = hashlib.sha256(self.routes.read_bytes()).hexdigest()
            if digest in self.refuse:
                self.nack = Nack(digest, "routes.yaml:3: upstreams: refused by the test")
            else:
                self.route_hash, self.nack = digest, None
        self.phases.append(state.phase)
        self.epoch = state.epoch
        self.reporter.report_now()

    def stop(self) -> None:
        self.follower.stop()
        self.reporter.stop()


@pytest.fixture
def env(tmp_path: Path) -> Environment:
    plans = tmp_path / "plans"
    plans.mkdir()
    for name in ("catalog.yaml", "inventory.yaml"):
        shutil.copy(TEMPLATES_DIR / name, plans / name)
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    engine: Engine = make_engine(f"sqlite:///{tmp_path / 'control.sqlite3'}")
    return Environment(
        plans_dir=plans,
        routes_path=routes,
        control=engine,
        metrics=GOOD,
        run_steps=False,
        cutover=CutOverSettings(fence_timeout=2.0, ack_timeout=3.0),
    )


@pytest.fixture
def replicas(env: Environment) -> Iterator[list[SimulatedReplica]]:
    url = str(env.engine().url)
    started = [
        SimulatedReplica(url, Role.PROXY, env.routes_path).start(),
        SimulatedReplica(url, Role.PROXY, env.routes_path).start(),
        SimulatedReplica(url, Role.SERVICE).start(),
        SimulatedReplica(url, Role.RELAY).start(),
    ]
    yield started
    for replica in started:
        replica.stop()


def phase_of(env: Environment) -> Phase:
    return load_plan(env.plans_dir / "catalog.yaml").phase


def test_a_journey_moves_every_replica_behind_the_fence(
    env: Environment, replicas: list[SimulatedReplica]
) -> None:
    journey = [Phase.DUAL_WRITE, Phase.SPLIT]
    for target in journey:
        outcome = advance(env, "catalog", actor="test")
        assert outcome.to_phase is target
    outcome = rollback(env, "catalog", actor="test", reason="drill")
    assert outcome.to_phase is Phase.DUAL_WRITE and phase_of(env) is Phase.DUAL_WRITE

    assert outcome.cutover is not None
    report = outcome.cutover.as_dict()
    assert list(report["epochs"]) == ["fence", "flip", "lift"]
    assert report["fence_held_ms"] is not None and report["lift_acknowledged"]
    published = read_state(env.engine(), "catalog")
    assert published is not None and published.phase is Phase.DUAL_WRITE
    assert not published.fenced
    for replica in replicas:
        assert replica.epoch == published.epoch
        # Each transition: fenced old phase, flipped (fenced) new phase, lifted new phase.
        assert replica.phases[-3:] == [Phase.SPLIT, Phase.DUAL_WRITE, Phase.DUAL_WRITE]
    digest = hashlib.sha256(env.routes_path.read_bytes()).hexdigest()  # type: ignore[union-attr]
    assert all(r.route_hash == digest for r in replicas if r.routes is not None)
    recorded = transitions(env.engine(), "catalog", limit=1)[0]
    assert recorded.cutover is not None and recorded.cutover["to"] == "dual_write"


def test_a_replica_on_an_old_route_table_blocks_until_left_out(
    env: Environment, replicas: list[SimulatedReplica]
) -> None:
    stale = replicas[1]
    stale.routes = None  # it stops reading the route file: it keeps serving what it had
    stale.route_hash = "0" * 64
    stale.reporter.report_now()
    env.cutover = CutOverSettings(fence_timeout=2.0, ack_timeout=0.5)

    with pytest.raises(ReplicasNotReady, match="route table 000000000000") as refused:
        advance(env, "catalog", actor="test")
    assert stale.reporter.instance in str(refused.value)
    assert phase_of(env) is Phase.SHARED
    state = read_state(env.engine(), "catalog")
    assert state is not None and state.epoch == 1  # nothing was published

    outcome = advance(env, "catalog", actor="test", force=True, reason="replica being drained")
    assert outcome.cutover is not None
    assert outcome.cutover.left_out == [
        {
            "instance": stale.reporter.instance,
            "why": "not acknowledged",
            "reason": "replica being drained",
        }
    ]
    assert phase_of(env) is Phase.DUAL_WRITE
    recorded = transitions(env.engine(), "catalog", limit=1)[0]
    assert recorded.cutover is not None and recorded.cutover["left_out"][0]["instance"] == (
        stale.reporter.instance
    )


def test_a_replica_that_stops_answering_during_the_fence_aborts_cleanly(
    env: Environment, replicas: list[SimulatedReplica]
) -> None:
    routes_before = env.routes_path.read_text()  # type: ignore[union-attr]
    service = replicas[2]
    fence_seen = threading.Event()
    original = service.changed

    def freeze_after_fence(state: PhaseState) -> None:
        original(state)
        if state.fenced:
            service.acking.clear()  # acknowledged the fence, then hangs: never the flip
            fence_seen.set()

    service.follower.on_change = freeze_after_fence
    with pytest.raises(CutOverAborted, match="at flip") as aborted:
        advance(env, "catalog", actor="test")
    assert fence_seen.is_set()
    assert service.reporter.instance in str(aborted.value)
    assert phase_of(env) is Phase.SHARED
    assert env.routes_path.read_text() == routes_before  # type: ignore[union-attr]
    state = read_state(env.engine(), "catalog")
    assert state is not None and state.phase is Phase.SHARED and not state.fenced
    assert transitions(env.engine(), "catalog") == []


def test_a_nack_of_the_new_table_aborts_at_once(
    env: Environment, replicas: list[SimulatedReplica]
) -> None:
    env.cutover = CutOverSettings(fence_timeout=30.0, ack_timeout=3.0)
    proxy = replicas[0]
    original = proxy.changed

    def refuse_new_tables(state: PhaseState) -> None:
        if state.phase is Phase.DUAL_WRITE:
            proxy.refuse.add(hashlib.sha256(proxy.routes.read_bytes()).hexdigest())  # type: ignore[union-attr]
        original(state)

    proxy.follower.on_change = refuse_new_tables
    with pytest.raises(CutOverAborted, match="REJECTED route table") as aborted:
        advance(env, "catalog", actor="test")
    assert "refused by the test" in str(aborted.value)
    assert phase_of(env) is Phase.SHARED


def test_a_silent_replica_is_listed_and_left_out_only_by_force(
    env: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = str(env.engine().url)
    crashed = SimulatedReplica(url, Role.SERVICE).start()
    crashed.reporter._stop.set()
    crashed.reporter._wake.set()
    crashed.reporter._thread.join()
    crashed.follower.stop()
    row = next(r for r in list_replicas(env.engine()) if r.instance == crashed.reporter.instance)
    env.cutover = CutOverSettings(ack_timeout=0.2)
    monkeypatch.setenv("STRANGLER_REPLICA_SILENT_AFTER", "0.1")
    wait_until(lambda: row.silent(), timeout=5, interval=0.02, what="the replica to fall silent")
    with pytest.raises(ReplicasNotReady, match="is silent"):
        advance(env, "catalog", actor="test")
    outcome = advance(env, "catalog", actor="test", force=True, reason="host lost")
    assert outcome.cutover is not None and outcome.cutover.left_out[0]["why"] == "silent"
    assert row.instance not in {r.instance for r in list_replicas(env.engine())}
    crashed.reporter.engine.dispose()
