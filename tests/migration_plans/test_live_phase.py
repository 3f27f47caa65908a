"""The published phase and the replica registry on SQLite and PostgreSQL (and Redis push)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from migration_plans.control.processes import wait_until
from migration_plans.core.database import engine as make_engine
from migration_plans.core.live_phase import PhaseFollower, PhaseState, publish, read_state, seed
from migration_plans.core.phase import Phase
from migration_plans.core.replicas import (
    Ack,
    Nack,
    ReplicaReporter,
    Role,
    forget_replicas,
    list_replicas,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def control_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'control.sqlite3'}"
    make: Callable[[str], str] = request.getfixturevalue("pg_database")
    return make("control")


@pytest.fixture
def control(control_url: str) -> Iterator[Engine]:
    engine = make_engine(control_url)
    yield engine
    engine.dispose()


def test_publish_raises_the_epoch_and_records_the_fence(control: Engine) -> None:
    assert read_state(control, "catalog") is None
    first = seed(control, "catalog", Phase.SHARED)
    assert (first.phase, first.epoch, first.fenced) == (Phase.SHARED, 1, False)
    assert seed(control, "catalog", Phase.SPLIT).phase is Phase.SHARED  # seeding never overwrites

    fenced = publish(control, "catalog", Phase.SHARED, fence_seconds=2.0)
    assert fenced.epoch == 2 and fenced.fenced and fenced.holds_writes()
    assert fenced.fence_until is not None
    assert not fenced.holds_writes(now=fenced.fence_until + 0.01)  # an abandoned fence expires

    lifted = publish(control, "catalog", Phase.DUAL_WRITE)
    stored = read_state(control, "catalog")
    assert stored == lifted
    assert (lifted.epoch, lifted.phase, lifted.fenced) == (3, Phase.DUAL_WRITE, False)


def test_concurrent_publishers_get_distinct_epochs(control: Engine) -> None:
    epochs: list[int] = []
    lock = threading.Lock()

    def publish_five() -> None:
        for _ in range(5):
            state = publish(control, "inventory", Phase.DUAL_WRITE)
            with lock:
                epochs.append(state.epoch)

    threads = [threading.Thread(target=publish_five) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(epochs) == list(range(1, 21))


def test_a_follower_sees_every_newer_epoch(control_url: str, control: Engine) -> None:
    seed(control, "catalog", Phase.SHARED)
    seen: list[PhaseState] = []
    follower = PhaseFollower(control_url, seen.append, contexts=["catalog"]).start()
    try:
        assert follower.current("catalog") is not None  # read before start() returns
        assert [s.epoch for s in seen] == [1]
        publish(control, "catalog", Phase.DUAL_WRITE, fence_seconds=2.0)
        publish(control, "other", Phase.SPLIT)  # not followed
        wait_until(lambda: len(seen) >= 2, timeout=10, interval=0.01, what="epoch 2")
        assert seen[-1].phase is Phase.DUAL_WRITE and seen[-1].fenced
        assert follower.current("other") is None
    finally:
        follower.stop()


@pytest.mark.redis
def test_a_follower_is_woken_by_redis_pub_sub(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite control database plus Redis: the push wakes the follower long before its poll."""
    monkeypatch.setenv("STRANGLER_REDIS_URL", redis_url)
    url = f"sqlite:///{tmp_path / 'control.sqlite3'}"
    engine = make_engine(url)
    seed(engine, "catalog", Phase.SHARED)
    seen = threading.Event()
    follower = PhaseFollower(url, lambda s: s.epoch >= 2 and seen.set(), poll_interval=30.0).start()
    try:
        # The thread subscribes after start(); a publication before that is missed, so
        # publish until one wakes it (each well inside the 30 s poll it would otherwise need).
        deadline = time.monotonic() + 10
        while not seen.is_set() and time.monotonic() < deadline:
            publish(engine, "catalog", Phase.DUAL_WRITE)
            seen.wait(0.5)
        assert seen.is_set(), "the Redis push did not wake the follower"
    finally:
        follower.stop()
        engine.dispose()


def test_replicas_register_acknowledge_and_deregister(control_url: str, control: Engine) -> None:
    ack = {"value": Ack(epochs={"catalog": 1})}
    reporter = ReplicaReporter(
        control_url,
        Role.SERVICE,
        context="catalog",
        address="http://127.0.0.1:8101",
        snapshot=lambda: ack["value"],
        interval=30.0,
    ).start()
    proxy = ReplicaReporter(
        control_url,
        Role.PROXY,
        snapshot=lambda: Ack(
            epochs={"catalog": 1}, route_hash="abc", route_generation=3, nack=Nack("def", "bad")
        ),
        interval=30.0,
    ).start()
    try:
        rows = {r.instance: r for r in list_replicas(control)}
        assert set(rows) == {reporter.instance, proxy.instance}
        assert rows[reporter.instance].epoch("catalog") == 1
        assert rows[proxy.instance].ack.nack == Nack("def", "bad")
        assert [r.instance for r in list_replicas(control, context="inventory")] == [proxy.instance]

        ack["value"] = Ack(epochs={"catalog": 4})
        reporter.report_now()  # acknowledges without waiting for the 30 s beat
        wait_until(
            lambda: any(r.epoch("catalog") == 4 for r in list_replicas(control)),
            timeout=10,
            interval=0.01,
            what="the acknowledgement of epoch 4",
        )
        service = next(r for r in list_replicas(control) if r.role is Role.SERVICE)
        assert not service.silent()
        assert service.silent(now=service.heartbeat_at + 60, after=5)
        assert service.as_dict()["epochs"] == {"catalog": 4}
    finally:
        reporter.stop()
    assert [r.instance for r in list_replicas(control)] == [proxy.instance]
    assert forget_replicas(control, [proxy.instance]) == 1
    proxy.report_now()  # a forgotten replica that is still alive registers again
    wait_until(
        lambda: len(list_replicas(control)) == 1, timeout=10, interval=0.01, what="re-registration"
    )
    proxy.stop()
