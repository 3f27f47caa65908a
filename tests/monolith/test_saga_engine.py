"""The saga engine on real databases: order of steps and compensations, retries with
backoff, attempts spent (compensate or dead-letter), leases after a crash, and local
writes that commit with the saga's progress or not at all.

Each case runs ``saga_cases.py`` in a subprocess with Django on a fresh monolith database
(SQLite and PostgreSQL): Django settings are process-global, so pytest never configures it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.monolith.conftest import REPO_ROOT, MonolithDatabases, monolith_env

CASES = str(REPO_ROOT / "tests" / "monolith" / "saga_cases.py")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def run_case(request: pytest.FixtureRequest, monolith_databases: MonolithDatabases) -> Any:
    database_url = monolith_databases.fresh(request, str(request.param))

    def run(case: str) -> dict[str, Any]:
        env = {
            **os.environ,
            **monolith_env(database_url),
            "STRANGLER_SAGA_MAX_ATTEMPTS": "3",
            "STRANGLER_SAGA_BACKOFF_BASE": "0.01",
            "STRANGLER_SAGA_BACKOFF_MAX": "0.05",
            "STRANGLER_LIVE_PHASE": "off",
            "LOG_LEVEL": "WARNING",
        }
        done = subprocess.run(
            [sys.executable, CASES, case],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    return run


def test_steps_run_in_order_and_complete(run_case: Any) -> None:
    out = run_case("completes")
    assert out["final"] == "completed"
    assert out["ran"] == ["a", "b", "c"]
    assert out["payload"] == {"done": ["a", "b", "c"]}
    assert not out["leased"]


def test_a_refusal_compensates_completed_steps_in_reverse(run_case: Any) -> None:
    out = run_case("refusal_compensates_in_reverse")
    assert out["final"] == "compensated"
    assert out["ran"] == ["a", "b", "c", "undo b", "undo a"]
    assert out["outcome"] == "no_way"
    assert out["last_error"] == "c refused"


def test_a_transient_failure_is_retried_with_backoff(run_case: Any) -> None:
    out = run_case("transient_retries_then_completes")
    assert out["first"] == "running"
    assert out["after_first"]["attempts"] == 1
    assert out["after_first"]["step_name"] == "b"
    assert "b did not answer" in out["after_first"]["last_error"]
    assert not out["after_first"]["leased"]
    assert out["scheduled"] == [0.01, 0.02]  # doubling from the base
    assert out["final"] == "completed"
    assert out["ran"] == ["a", "b", "b", "b"]


def test_a_run_before_the_backoff_ends_does_nothing(run_case: Any) -> None:
    out = run_case("an_early_run_waits_for_the_backoff")
    assert out["first"] == "running"
    assert out["early"] == "running"
    assert out["ran_early"] == ["a"]  # the early run did not try again
    assert out["due"] == "completed"
    assert out["ran"] == ["a", "a", "b"]


def test_spent_attempts_compensate_an_abortable_saga(run_case: Any) -> None:
    out = run_case("attempts_spent_abortable_compensates")
    assert out["final"] == "compensated"
    assert out["outcome"] == "gave_up:b"
    assert out["ran"] == ["a", "b", "b", "b", "undo a"]


def test_spent_attempts_dead_letter_a_saga_that_cannot_be_undone(run_case: Any) -> None:
    out = run_case("attempts_spent_forward_only_dead_letters")
    assert out["final"] == "dead"
    assert out["dead_from"] == "running"
    assert out["attempts"] == 3
    assert out["ran"] == ["a", "b", "b", "b"]
    assert out["due"] == []  # the sweeper leaves dead sagas to an operator


def test_a_leased_saga_is_left_alone_until_its_lease_expires(run_case: Any) -> None:
    out = run_case("lease_excludes_then_expired_lease_resumes")
    assert out["blocked"] == "running"
    assert out["ran_while_leased"] == []
    assert out["due_while_leased"] == []
    assert out["due_after_expiry"] == [out["saga_id"]]
    assert out["final"] == "completed"
    assert out["ran"] == ["b", "c"]  # step a was done before the crash: not run again
    assert out["payload"] == {"done": ["a", "b", "c"]}


def test_a_failed_attempt_rolls_back_its_local_writes(run_case: Any) -> None:
    out = run_case("local_writes_roll_back_with_a_failed_attempt")
    assert out["final"] == "completed"
    assert out["ran"] == ["w", "w"]
    assert out["users"] == ["k7-w-2"]


def test_starting_a_saga_twice_by_key_gives_the_first(run_case: Any) -> None:
    out = run_case("start_is_idempotent_by_key")
    assert out == {"same": True, "created": [True, False], "payload": {"n": 1}, "active": True}
