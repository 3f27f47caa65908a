"""`strangler saga` and :mod:`dualwrite.sagas` on the monolith's real ``strangler_saga``.

The table comes from the monolith's own Django migrations, on SQLite and on
PostgreSQL; rows are planted with SQLAlchemy, as the engine would have left them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from typer.testing import CliRunner

from dualwrite.exceptions import SagaNotDead
from dualwrite.sagas import list_sagas, printable, retry_dead, saga_counts, saga_table
from migration_plans.control.cli import app
from migration_plans.core.database import engine as make_engine
from migration_plans.testing.databases import lock_waiters
from tests.monolith.conftest import manage

runner = CliRunner()

TOKEN = "tok_live_4242SECRETCARD"
PAYLOAD = json.dumps({"order_id": 1, "card_token": TOKEN})
MIN = timedelta(minutes=1)


@dataclass
class Planted:
    """The monolith's database (migrated) and a way to plant saga rows in it."""

    url: str
    engine: sa.Engine
    now: datetime

    def add(self, key: str, state: str, *, ago: timedelta = timedelta(0), **values: Any) -> int:
        """A saga row last touched ``ago`` before now (finished then, when it is)."""
        touched = self.now - ago
        row = {
            "kind": "place_order",
            "key": key,
            "subject": f"order:{key}",
            "state": state,
            "step": 1,
            "step_name": "reserve",
            "payload": PAYLOAD,
            "created_at": touched - MIN,
            "updated_at": touched,
            "finished_at": touched if state in ("completed", "compensated") else None,
            **values,
        }
        with self.engine.begin() as conn:
            return int(conn.execute(sa.insert(saga_table).values(row)).inserted_primary_key[0])

    def row(self, saga_id: int) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(saga_table).where(saga_table.c.id == saga_id)).one()


def _migrated(url: str) -> str:
    manage(url, "migrate", "--no-input")
    return url


@pytest.fixture(scope="module", params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def monolith_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A monolith database migrated by Django, per backend, shared by the module."""
    if request.param == "sqlite":
        return _migrated(f"sqlite:///{tmp_path_factory.mktemp('saga') / 'monolith.sqlite3'}")
    make: Callable[[str], str] = request.getfixturevalue("pg_database")
    return _migrated(make("saga"))


@pytest.fixture
def planted(monolith_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Planted]:
    """No saga yet; the CLI reads this database through STRANGLER_MONOLITH_DATABASE_URL."""
    engine = make_engine(monolith_url)
    with engine.begin() as conn:
        conn.execute(sa.delete(saga_table))
    monkeypatch.setenv("STRANGLER_MONOLITH_DATABASE_URL", monolith_url)
    yield Planted(monolith_url, engine, datetime.now(UTC))
    engine.dispose()


def saga(*args: str) -> Result:
    return runner.invoke(app, ["saga", *args])


def plant_mix(place: Planted) -> dict[str, int]:
    """Two dead, two stuck while active, one healthy, three finished."""
    return {
        "done_old": place.add("done-old", "completed", ago=60 * MIN),
        "dead_new": place.add(
            "dead-new", "dead", ago=5 * MIN, attempts=8, dead_from="running", last_error="e1"
        ),
        "healthy": place.add("healthy", "running"),
        "idle": place.add("idle", "running", ago=10 * MIN),
        "undone": place.add("undone", "compensated", ago=30 * MIN, outcome="payment_failed"),
        "dead_old": place.add(
            "dead-old", "dead", ago=20 * MIN, kind="cancel_order", dead_from="compensating"
        ),
        "failing": place.add("failing", "compensating", attempts=2, last_error="timeout"),
        "done_new": place.add("done-new", "completed", ago=MIN),
    }


def test_the_table_matches_the_django_migration(planted: Planted) -> None:
    with planted.engine.connect() as conn:
        migrated = {
            c["name"]: c["nullable"] for c in sa.inspect(conn).get_columns("strangler_saga")
        }
    assert migrated == {column.name: column.nullable for column in saga_table.c}


def test_stuck_first_then_active_then_newest_finished(planted: Planted) -> None:
    ids = plant_mix(planted)
    listed = list_sagas(planted.engine)
    order = ["dead_old", "dead_new", "idle", "failing", "healthy", "done_new", "undone", "done_old"]
    assert [s.id for s in listed] == [ids[name] for name in order]
    assert [s.stuck for s in listed] == [True] * 4 + [False] * 4
    counts = saga_counts(planted.engine)
    assert counts.states == {
        "running": 2,
        "compensating": 1,
        "completed": 2,
        "compensated": 1,
        "dead": 2,
    }
    assert counts.kinds == {"cancel_order": 1, "place_order": 7} and counts.stuck == 4


def test_status_json_shape_filters_and_exit_status(planted: Planted) -> None:
    ids = plant_mix(planted)
    result = saga("status", "--json")
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {"counts", "sagas"}
    assert payload["counts"]["stuck"] == 4 and payload["counts"]["total"] == 8
    first = payload["sagas"][0]
    assert (
        first["id"] == ids["dead_old"] and first["stuck"] and first["dead_from"] == "compensating"
    )
    assert "payload" not in first and TOKEN not in result.stdout
    assert datetime.fromisoformat(first["updated_at"]) < planted.now - 19 * MIN

    stuck = json.loads(saga("status", "--json", "--stuck").stdout)["sagas"]
    assert [s["id"] for s in stuck] == [ids[n] for n in ("dead_old", "dead_new", "idle", "failing")]
    dead = json.loads(saga("status", "--json", "--state", "dead", "--limit", "1").stdout)
    assert [s["id"] for s in dead["sagas"]] == [ids["dead_old"]]
    assert dead["counts"]["total"] == 8  # counts cover every saga, whatever the filters
    kind = json.loads(saga("status", "--json", "--kind", "cancel_order").stdout)["sagas"]
    assert [s["id"] for s in kind] == [ids["dead_old"]]
    patient = json.loads(saga("status", "--json", "--stuck", "--stuck-after", "3600").stdout)
    assert [s["id"] for s in patient["sagas"]] == [
        ids[n] for n in ("dead_old", "dead_new", "failing")
    ]
    assert saga("status", "--state", "lost").exit_code == 2


def test_status_table_marks_the_stuck_and_never_shows_a_payload(planted: Planted) -> None:
    plant_mix(planted)
    result = saga("status")
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "2 running, 1 compensating, 2 completed, 1 compensated, 2 dead; 4 stuck" in out
    assert "kinds: cancel_order 1, place_order 7" in out
    lines = [line for line in out.splitlines() if "STUCK" in line]
    assert len(lines) == 4 and "dead-old" in lines[0] and "dead (from compensating)" in lines[0]
    assert (
        out.index("dead-old") < out.index("healthy") < out.index("done-new") < out.index("done-old")
    )
    assert TOKEN not in out and "card_token" not in out


def test_nothing_stuck_exits_zero(planted: Planted) -> None:
    planted.add("fine", "running")
    planted.add("over", "completed", ago=90 * MIN)
    result = saga("status")
    assert result.exit_code == 0, result.output
    assert "0 stuck" in result.stdout


def test_stored_text_is_printed_without_control_characters(planted: Planted) -> None:
    hostile = "boom\x1b[2J\x1b]0;owned\x07 [bold red]markup[/] \u202eevil\r\nsecond line\x9b1m"
    planted.add("key\x1b[31m-red", "dead", last_error=hostile, outcome="gave_up:\x1breserve")
    table = saga("status")
    as_json = saga("status", "--json")
    for out in (table.stdout, as_json.stdout):
        assert not any(char in out for char in "\x1b\x07\u202e\x9b\r"), repr(out)
        assert "\\u001b" not in out and "\\u202e" not in out
    assert "boom[2J]0;owned [bold red]markup[/] evil second line1m" in table.stdout
    assert "key[31m-red" in table.stdout
    [row] = json.loads(as_json.stdout)["sagas"]
    assert row["last_error"] == "boom[2J]0;owned [bold red]markup[/] evil\nsecond line1m"
    assert printable("a\tb\nc\x00", one_line=True) == "a b c"


def test_retry_puts_a_dead_saga_back_where_it_died(planted: Planted) -> None:
    lease = planted.now + 5 * MIN
    backward = planted.add(
        "dead-back",
        "dead",
        ago=30 * MIN,
        dead_from="compensating",
        attempts=8,
        next_attempt_at=lease,
        lease_owner="host:1:abc",
        lease_until=lease,
        last_error="undo reserve: ConnectionError",
    )
    forward = planted.add("dead-fwd", "dead", ago=30 * MIN, attempts=8)  # dead_from unknown
    result = saga("retry", str(backward))
    assert result.exit_code == 0, result.output
    assert f"saga {backward} (place_order dead-back): dead -> compensating" in result.stdout
    row = planted.row(backward)
    assert (row.state, row.dead_from, row.attempts) == ("compensating", "", 0)
    assert row.next_attempt_at is None and row.lease_owner is None and row.lease_until is None
    updated = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)
    assert updated >= planted.now - timedelta(seconds=1)
    assert row.last_error == "undo reserve: ConnectionError" and row.payload == PAYLOAD
    assert saga("retry", str(forward)).exit_code == 0
    assert planted.row(forward).state == "running"


def test_retry_refuses_a_saga_that_is_not_dead(planted: Planted) -> None:
    running = planted.add("busy", "running", attempts=3)
    result = saga("retry", str(running))
    assert result.exit_code == 1
    assert f"error: saga {running} (busy) is running, not dead" in result.stderr
    assert planted.row(running).attempts == 3
    done = planted.add("done", "completed")
    assert "is completed, not dead" in saga("retry", str(done)).stderr
    missing = saga("retry", "999999")
    assert missing.exit_code == 1 and "no saga with id 999999" in missing.stderr


@pytest.mark.parametrize("monolith_url", [pytest.param("pg", marks=pytest.mark.pg)], indirect=True)
def test_retry_waits_for_the_row_and_sees_a_concurrent_resume(planted: Planted) -> None:
    """PostgreSQL: the row lock (SQLite's writers are serialised by BEGIN IMMEDIATE)."""
    dead = planted.add("contended", "dead", dead_from="running", attempts=8)
    outcome: list[BaseException | str] = []

    def operator() -> None:
        try:
            outcome.append(retry_dead(planted.engine, dead).state)
        except BaseException as exc:
            outcome.append(exc)

    with planted.engine.connect() as holder:
        holder.execute(sa.select(saga_table.c.id).where(saga_table.c.id == dead).with_for_update())
        worker = threading.Thread(target=operator)
        worker.start()
        wait_until(
            lambda: lock_waiters(planted.engine.url.render_as_string(hide_password=False)) > 0,
            "retry_dead to wait for the row",
        )
        holder.execute(sa.update(saga_table).where(saga_table.c.id == dead).values(state="running"))
        holder.commit()
    worker.join(timeout=30)
    [result] = outcome
    assert isinstance(result, SagaNotDead), result
    assert planted.row(dead).attempts == 8


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        threading.Event().wait(0.01)


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def unmigrated_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A monolith database that answers but was never migrated."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        make_engine(url).connect().close()
    else:
        url = request.getfixturevalue("pg_database")("unmigrated")
    monkeypatch.setenv("STRANGLER_MONOLITH_DATABASE_URL", url)
    return url


def test_a_monolith_not_migrated_yet_has_no_sagas(unmigrated_url: str) -> None:
    result = saga("status", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["sagas"] == [] and payload["counts"]["total"] == 0
    assert payload["counts"]["states"]["dead"] == 0
    retry = saga("retry", "1")
    assert retry.exit_code == 2 and isinstance(retry.exception, SystemExit)
    assert "error: the monolith database has no strangler_saga table" in retry.stderr
    assert "strangler monolith migrate" in retry.stderr


def test_an_unreachable_database_exits_2_with_a_message(tmp_path: Path) -> None:
    down = saga("status", "--monolith-url", "postgresql://postgres:hunter2@127.0.0.1:1/monolith")
    assert down.exit_code == 2 and isinstance(down.exception, SystemExit)
    assert "error: cannot read the monolith database" in down.stderr
    assert "127.0.0.1:1" in down.stderr and "hunter2" not in down.stderr
    assert "Traceback" not in down.output
    absent = tmp_path / "nowhere" / "monolith.sqlite3"
    missing = saga("retry", "1", "--monolith-url", f"sqlite:///{absent}")
    assert missing.exit_code == 2 and f"no monolith database at {absent}" in missing.stderr
    assert not absent.parent.exists()
