"""Dashboard sessions in the control database: random ids, idle and absolute expiry,
revocation seen by every replica; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from migration_plans.control import processes
from migration_plans.control.dashboard.sessions import (
    TOUCH_EVERY,
    SessionStore,
    SessionStoreUnavailable,
    sessions_table,
)
from migration_plans.core.control_db import control_engine


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def free_port() -> int:
    return processes.free_port()  # nothing listens there


@pytest.fixture(params=["sqlite", "postgresql"])
def control_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'control.sqlite3'}"
    else:
        make: Callable[[str], str] = request.getfixturevalue("pg_database")
        url = make("sessions")
    yield url
    control_engine(url).dispose()


def test_sessions_expire_when_idle_or_old_and_end_when_revoked(control_url: str) -> None:
    clock = Clock()
    store = SessionStore(control_url, idle=600, lifetime=3600, clock=clock)
    other_replica = SessionStore(control_url, idle=600, lifetime=3600, clock=clock)
    first, second, third = store.create(), store.create(), store.create()
    assert len({first, second, third}) == 3 and all(len(s) >= 40 for s in (first, second))
    assert other_replica.valid(first) and other_replica.valid(second)

    clock.now += 500  # within the idle limit: the use is noted...
    assert store.valid(first)
    clock.now += 500  # ...so first lives on, while second (unused for 1,000 s) is gone
    assert store.valid(first) and not store.valid(second)

    other_replica.revoke(third)  # a sign-out on one replica ends it on all
    assert not store.valid(third)

    signed_in = 1_800_000_000.0
    while clock.now + TOUCH_EVERY * 5 < signed_in + 3600:  # used all along...
        clock.now += TOUCH_EVERY * 5
        assert store.valid(first)
    clock.now = signed_in + 3600  # ...it still ends an hour after sign-in
    assert not store.valid(first)
    assert not store.valid("") and not store.valid("made-up-session-id")


def test_only_a_digest_of_the_session_id_is_stored(control_url: str) -> None:
    store = SessionStore(control_url)
    session = store.create()
    with control_engine(control_url).connect() as conn:
        stored = conn.execute(select(sessions_table.c.id_hash)).scalars().all()
    assert session not in stored and len(stored) == 1 and len(stored[0]) == 64


def test_an_unreachable_control_database_is_reported(free_port: int) -> None:
    store = SessionStore(f"postgresql://postgres@127.0.0.1:{free_port}/control")
    with pytest.raises(SessionStoreUnavailable, match="control database"):
        store.create()
    with pytest.raises(SessionStoreUnavailable, match="control database"):
        store.valid("some-session-id")
