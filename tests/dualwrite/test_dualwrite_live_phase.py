"""The relay follows the published phase without a restart (DESIGN.md, "Transitions are live").

In-process relay loops and Celery tasks on SQLite, then a real relay process on PostgreSQL
switching phases while events flow.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from dualwrite.config import Direction
from dualwrite.live import follows_published_phase
from dualwrite.loop import RelayLoop
from dualwrite.outbox import OutboxSink
from dualwrite.status import Backlog, outbox_backlog
from migration_plans.control.processes import ManagedProcess, wait_until
from migration_plans.core.database import engine as make_engine
from migration_plans.core.live_phase import publish
from migration_plans.core.phase import Phase
from migration_plans.core.replicas import Replica, Role, list_replicas

M2S, S2M = Direction.MONOLITH_TO_SERVICE, Direction.SERVICE_TO_MONOLITH


def no_celery(*args: Any, **kwargs: Any) -> bool:
    return True


@pytest.fixture
def control_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'control.sqlite3'}"


@pytest.fixture
def control(control_url: str) -> Iterator[Engine]:
    engine = make_engine(control_url)
    yield engine
    engine.dispose()


def monolith_category(pair: Any, key: int) -> None:
    """A monolith write the capture triggers turn into a monolith outbox event."""
    pair.monolith(
        "INSERT INTO catalog_category (id, name, slug, description) VALUES (:id, :n, :n, '')",
        {"id": key, "n": f"m{key}"},
    )


def service_category(pair: Any, key: int) -> None:
    """A service write: the row and its outbox event in one transaction."""
    row = {"id": key, "name": f"s{key}", "slug": f"s{key}", "description": ""}
    with Session(pair.relays[0].engines["service"]) as session, session.begin():
        session.execute(
            text(
                "INSERT INTO categories (id, name, slug, description) VALUES (:id, :name, :slug, '')"
            ),
            row,
        )
        OutboxSink(context="catalog").record(
            session, table="categories", operation="insert", key=key, row=row, request_id=f"r{key}"
        )


def relay_replica(control: Engine) -> Replica | None:
    relays = [r for r in list_replicas(control, context="catalog") if r.role is Role.RELAY]
    assert len(relays) <= 1, relays
    return relays[0] if relays else None


def acked(control: Engine, epoch: int) -> bool:
    replica = relay_replica(control)
    return replica is not None and replica.epoch("catalog") == epoch


def wait_acked(control: Engine, epoch: int, timeout: float = 15) -> None:
    wait_until(
        lambda: acked(control, epoch),
        timeout=timeout,
        interval=0.02,
        what=f"the relay's acknowledgement of epoch {epoch}",
    )


@contextmanager
def running(loop: RelayLoop) -> Iterator[threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,), name="test-relay-loop")
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()


def parked_lanes(loop: RelayLoop, monkeypatch: pytest.MonkeyPatch) -> set[Direction]:
    """The lanes waiting for a phase that syncs them (they apply nothing meanwhile)."""
    parked: set[Direction] = set()
    idle = loop._idle

    def tracked(direction: Direction, stop: threading.Event) -> bool:
        parked.add(direction)
        try:
            return idle(direction, stop)
        finally:
            parked.discard(direction)

    monkeypatch.setattr(loop, "_idle", tracked)
    return parked


def switches(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, int]]:
    return [
        (r.__dict__["from"], r.__dict__["to"], r.__dict__["epoch"])
        for r in caplog.records
        if getattr(r, "event", None) == "phase_switched"
    ]


def test_following_is_off_when_the_environment_pins_the_phase() -> None:
    assert follows_published_phase("catalog", {})
    assert not follows_published_phase("catalog", {"CATALOG_PHASE": "split"})
    assert not follows_published_phase("catalog", {"STRANGLER_PHASE": "dual_write"})
    assert not follows_published_phase("catalog", {"STRANGLER_LIVE_PHASE": "off"})
    assert follows_published_phase("catalog", {"STRANGLER_PHASE": " ", "INVENTORY_PHASE": "x"})


def test_relay_loop_switches_phase_without_losing_pending_events(
    sqlite_pair: Any,
    control_url: str,
    control: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """dual_write -> split (reverse sync off: nothing runs, events wait) -> dual_write."""
    caplog.set_level(logging.INFO, logger="dualwrite.loop")
    relay = sqlite_pair.relay(phase=Phase.DUAL_WRITE, reverse_sync=False)
    loop = RelayLoop(relay, phase_url=control_url, dispatcher=no_celery)
    parked = parked_lanes(loop, monkeypatch)
    with running(loop):
        wait_acked(control, 0)  # nothing published yet: the plan's phase, as epoch 0
        monolith_category(sqlite_pair, 1)
        service_category(sqlite_pair, 10_001)
        sqlite_pair.assert_in_sync(timeout=15)

        assert publish(control, "catalog", Phase.SPLIT).epoch == 1
        wait_acked(control, 1)
        assert loop.settings.phase is Phase.SPLIT and loop.settings.directions == ()
        assert switches(caplog) == [("dual_write", "split", 1)]
        wait_until(lambda: parked == {M2S, S2M}, timeout=10, what="both lanes parked")

        for key in (2, 3):
            monolith_category(sqlite_pair, key)
            service_category(sqlite_pair, 10_000 + key)
        assert publish(control, "catalog", Phase.SPLIT).epoch == 2  # same phase, newer epoch
        wait_acked(control, 2)
        assert outbox_backlog(relay) == {M2S: Backlog(pending=2), S2M: Backlog(pending=2)}
        assert switches(caplog) == [("dual_write", "split", 1)]

        assert publish(control, "catalog", Phase.DUAL_WRITE).epoch == 3
        wait_acked(control, 3)
        sqlite_pair.assert_in_sync(timeout=15)
        assert switches(caplog)[-1] == ("split", "dual_write", 3)
    backlog = outbox_backlog(relay)
    assert all(b.drained for b in backlog.values()), backlog
    assert sqlite_pair.outbox_counts("monolith") == {"applied": 3}
    assert sqlite_pair.outbox_counts("service") == {"applied": 3}
    assert relay_replica(control) is None  # a stopped relay deregisters


def test_published_phase_wins_and_a_switch_waits_for_the_pass_in_progress(
    sqlite_pair: Any, control_url: str, control: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(control, "catalog", Phase.DUAL_WRITE)
    relay = sqlite_pair.relay(phase=Phase.SHARED, reverse_sync=False)  # the plan says shared
    loop = RelayLoop(relay, phase_url=control_url, dispatcher=no_celery)
    in_pass, release, switch_started = threading.Event(), threading.Event(), threading.Event()
    apply_next = relay.apply_next

    def held(direction: Direction) -> Any:
        if direction is S2M and not release.is_set():
            in_pass.set()
            release.wait(30)
        return apply_next(direction)

    monkeypatch.setattr(relay, "apply_next", held)
    with running(loop):
        wait_acked(control, 1)
        assert loop.settings.phase is Phase.DUAL_WRITE
        assert in_pass.wait(10), "the service -> monolith lane made no pass"
        switching = loop._gate.switching

        @contextmanager
        def observed() -> Iterator[None]:
            switch_started.set()
            with switching():
                yield

        monkeypatch.setattr(loop._gate, "switching", observed)
        publish(control, "catalog", Phase.SPLIT)
        assert switch_started.wait(10), "the follower did not start the switch"
        # The dual_write pass still runs: the switch waits for it, so does the ACK.
        assert loop.settings.phase is Phase.DUAL_WRITE
        assert acked(control, 1)
        release.set()
        wait_acked(control, 2)
        assert loop.settings.phase is Phase.SPLIT


@pytest.fixture
def task_env(
    sqlite_pair: Any, control_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], Any]]:
    """The worker's environment (reverse sync off, phase not pinned); fresh task caches."""
    from dualwrite import tasks

    for name, value in sqlite_pair.env(CATALOG_REVERSE_SYNC="false").items():
        monkeypatch.setenv(name, value)
    for name in ("STRANGLER_PHASE", "CATALOG_PHASE", "STRANGLER_LIVE_PHASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STRANGLER_CONTROL_DB_URL", control_url)
    tasks.relay_for.cache_clear()
    tasks.configured_settings.cache_clear()
    yield lambda: tasks.relay_for("catalog")
    tasks.relay_for("catalog").close()
    tasks.relay_for.cache_clear()
    tasks.configured_settings.cache_clear()


def run_task(key: int) -> int:
    from dualwrite.tasks import apply_key

    args = ("catalog", S2M.value, "categories", str(key), f"r{key}")
    return int(apply_key.apply(args=args).get(timeout=30))


def test_celery_task_applies_under_the_phase_published_now(
    sqlite_pair: Any,
    control: Engine,
    task_env: Callable[[], Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="dualwrite.tasks")
    publish(control, "catalog", Phase.DUAL_WRITE)
    service_category(sqlite_pair, 10_001)
    assert run_task(10_001) == 1
    assert task_env().settings.phase is Phase.DUAL_WRITE

    publish(control, "catalog", Phase.SPLIT)  # reverse sync off: service -> monolith stops
    service_category(sqlite_pair, 10_002)
    assert run_task(10_002) == 0  # succeeds, applies nothing, loses nothing
    cached = task_env()
    assert cached.settings.phase is Phase.SPLIT and cached.settings.directions == ()
    assert outbox_backlog(cached, [S2M]) == {S2M: Backlog(pending=1)}
    assert any(getattr(r, "event", None) == "apply_deferred" for r in caplog.records)

    publish(control, "catalog", Phase.DUAL_WRITE)
    assert run_task(10_002) == 1
    assert task_env().settings.phase is Phase.DUAL_WRITE
    sqlite_pair.assert_in_sync(timeout=5)


def test_celery_task_keeps_a_pinned_phase(
    sqlite_pair: Any,
    control: Engine,
    task_env: Callable[[], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CATALOG_PHASE", "dual_write")
    publish(control, "catalog", Phase.SPLIT)
    service_category(sqlite_pair, 10_001)
    assert run_task(10_001) == 1
    assert task_env().settings.phase is Phase.DUAL_WRITE


def test_inline_relay_stops_and_starts_again_in_one_process(sqlite_pair: Any) -> None:
    from dualwrite.inline import start_inline_relay, stop_inline_relay

    settings = sqlite_pair.settings(phase=Phase.DUAL_WRITE, reverse_sync=False)
    first = start_inline_relay(settings)
    try:
        assert first is not None and first.running
        assert start_inline_relay(settings) is first
        assert stop_inline_relay("catalog") and not first.running
        assert not stop_inline_relay("catalog")

        again = start_inline_relay(settings)
        assert again is not None and again is not first and again.running
        service_category(sqlite_pair, 10_001)
        wait_until(
            lambda: 10_001 in sqlite_pair.rows("monolith")["categories"],
            timeout=10,
            what="the restarted inline relay",
        )
        # split without reverse sync does not sync service -> monolith: it stops.
        assert start_inline_relay(replace(settings, phase=Phase.SPLIT)) is None
        assert not again.running and not stop_inline_relay("catalog")

        third = start_inline_relay(settings)
        assert third is not None and third.running
        third.stop()  # stopped by hand, as a service's lifespan does: start replaces it
        replaced = start_inline_relay(settings)
        assert replaced is not None and replaced is not third and replaced.running
    finally:
        stop_inline_relay("catalog")


@pytest.mark.pg
@pytest.mark.e2e
@pytest.mark.slow
def test_relay_process_follows_the_published_phase_while_events_flow(
    pair: Any,
    start_relay: Callable[..., ManagedProcess],
    pg_database: Callable[[str], str],
) -> None:
    """dual_write -> split (reverse sync on) -> dual_write under a steady write load."""
    control_url = pg_database("control")
    control = make_engine(control_url)
    publish(control, "catalog", Phase.DUAL_WRITE)
    # The floor creates its tables with checkfirst, which races between two processes on
    # PostgreSQL: this test's first registry read would collide with the relay's first beat.
    assert list_replicas(control) == []
    relay = start_relay(
        pair,
        STRANGLER_PHASE="",
        STRANGLER_CONTROL_DB_URL=control_url,
        CATALOG_REVERSE_SYNC="true",
    )
    writer = Writer(pair)
    try:
        wait_acked(control, 1, timeout=30)
        replica = relay_replica(control)
        assert replica is not None and replica.pid == relay.pid
        writer.start()
        wait_until(lambda: writer.written >= 20, timeout=30, what="writes under way")
        pair_applied = pair.outbox_counts
        wait_until(lambda: pair_applied("monolith").get("applied", 0) >= 5, timeout=30, what="M2S")

        publish(control, "catalog", Phase.SPLIT)
        wait_acked(control, 2, timeout=30)
        # split with reverse sync: service -> monolith goes on, monolith -> service waits.
        mark = writer.written
        wait_until(
            lambda: writer.service_key(mark) in pair.rows("monolith")["categories"],
            timeout=30,
            what="a service write made in split reaching the monolith",
        )
        wait_until(
            lambda: pair.outbox_counts("monolith").get("pending", 0) >= 5,
            timeout=30,
            what="monolith events waiting in split",
        )

        publish(control, "catalog", Phase.DUAL_WRITE)
        wait_acked(control, 3, timeout=30)
        target = writer.written + 20
        wait_until(lambda: writer.written >= target, timeout=30, what="writes after the switch")
    finally:
        writer.stop()
    pair.assert_in_sync(timeout=60)
    assert pair.outbox_counts("monolith") == {"applied": writer.written}
    assert pair.outbox_counts("service") == {"applied": writer.written}
    assert len(pair.rows("monolith")["categories"]) == 2 * writer.written
    log = relay.log_tail(5000)
    assert '"event": "phase_switched"' in log
    assert '"from": "dual_write", "to": "split", "epoch": 2' in log
    assert '"from": "split", "to": "dual_write", "epoch": 3' in log
    assert acked(control, 3)
    control.dispose()


class Writer:
    """Writes one monolith and one service category at a time until stopped."""

    def __init__(self, pair: Any) -> None:
        self.pair = pair
        self.written = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-writer")

    @staticmethod
    def service_key(n: int) -> int:
        return 100_000 + n

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        assert not self.errors, self.errors

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                n = self.written + 1
                monolith_category(self.pair, n)
                service_category(self.pair, self.service_key(n))
                self.written = n
                self._stop.wait(0.005)  # a steady load, not a flood
        except BaseException as exc:
            self.errors.append(exc)
