"""Saga engine cases, run in a subprocess with Django configured on a fresh monolith database.

    python tests/monolith/saga_cases.py CASE

Each case registers small sagas whose steps record what ran (in the saga's payload and
in a ``customers_customer``-free table: the order rows of the shop are not needed) and
prints one JSON line that the test checks.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.utils import timezone  # noqa: E402

from dualwrite.django_app import saga  # noqa: E402
from dualwrite.django_app.models import Saga  # noqa: E402
from dualwrite.django_app.saga import SagaDefinition, SagaRun, Step, StepFailed  # noqa: E402

ran: list[str] = []
failures: dict[str, int] = {}


class Flaky(Exception):
    """A transient failure (a service that did not answer)."""


def step(name: str, *, refuse: bool = False, flaky: int = 0, writes: bool = False) -> Step:
    """A step that records itself; ``flaky`` transient failures first, or a refusal."""

    def action(run: SagaRun) -> None:
        ran.append(name)
        if writes:  # a local write that must commit with the saga's progress, or not at all
            get_user_model().objects.create(username=f"{run.key}-{name}-{len(ran)}")
        if failures.get(name, 0) < flaky:
            failures[name] = failures.get(name, 0) + 1
            raise Flaky(f"{name} did not answer")
        if refuse:
            raise StepFailed("no_way", f"{name} refused")
        run.payload.setdefault("done", []).append(name)

    def undo(run: SagaRun) -> None:
        ran.append(f"undo {name}")

    return Step(name, action, compensate=undo)


def start(definition: SagaDefinition, key: str) -> int:
    saga.register(definition)
    row, created = saga.start(definition, key=key, subject=key, payload={})
    assert created
    return row.pk


def state_of(saga_id: int) -> dict[str, object]:
    row = Saga.objects.get(pk=saga_id)
    return {
        "state": row.state,
        "step": row.step,
        "step_name": row.step_name,
        "attempts": row.attempts,
        "outcome": row.outcome,
        "last_error": row.last_error,
        "dead_from": row.dead_from,
        "payload": json.loads(row.payload),
        "leased": row.lease_owner is not None,
    }


def case_completes() -> object:
    saga_id = start(SagaDefinition("three", (step("a"), step("b"), step("c"))), "k1")
    final = saga.run(saga_id)
    return {"final": final.value, "ran": ran, **state_of(saga_id)}


def case_refusal_compensates_in_reverse() -> object:
    definition = SagaDefinition("refused", (step("a"), step("b"), step("c", refuse=True)))
    saga_id = start(definition, "k2")
    final = saga.run(saga_id)
    return {"final": final.value, "ran": ran, **state_of(saga_id)}


def case_transient_retries_then_completes() -> object:
    saga_id = start(SagaDefinition("flaky", (step("a"), step("b", flaky=2))), "k3")
    scheduled: list[float] = []
    with saga.scheduler_installed(lambda _id, delay: scheduled.append(delay)):
        first = saga.run(saga_id)
        after_first = state_of(saga_id)
        row = saga.drive(saga_id, wait_s=30)
    return {
        "first": first.value,
        "after_first": after_first,
        "scheduled": scheduled,
        "final": row.state,
        "ran": ran,
        **state_of(saga_id),
    }


def case_an_early_run_waits_for_the_backoff() -> object:
    saga_id = start(SagaDefinition("backoff", (step("a", flaky=1), step("b"))), "k9")
    with saga.scheduler_installed(None):
        first = saga.run(saga_id)
        Saga.objects.filter(pk=saga_id).update(
            next_attempt_at=timezone.now() + timedelta(seconds=60)
        )
        early = saga.run(saga_id)  # a duplicate task, or the retry's task arriving early
        ran_early = list(ran)
        Saga.objects.filter(pk=saga_id).update(next_attempt_at=timezone.now())
        due = saga.run(saga_id)
    return {
        "first": first.value,
        "early": early.value,
        "ran_early": ran_early,
        "due": due.value,
        "ran": ran,
    }


def case_attempts_spent_abortable_compensates() -> object:
    definition = SagaDefinition("gives_up", (step("a"), step("b", flaky=99)), abortable=True)
    saga_id = start(definition, "k4")
    with saga.scheduler_installed(None):
        row = saga.drive(saga_id, wait_s=30)
    return {"final": row.state, "ran": ran, **state_of(saga_id)}


def case_attempts_spent_forward_only_dead_letters() -> object:
    definition = SagaDefinition("stuck", (step("a"), step("b", flaky=99)), abortable=False)
    saga_id = start(definition, "k5")
    with saga.scheduler_installed(None):
        row = saga.drive(saga_id, wait_s=30)
    return {"final": row.state, "ran": ran, "due": saga.due_ids(), **state_of(saga_id)}


def case_lease_excludes_then_expired_lease_resumes() -> object:
    saga_id = start(SagaDefinition("leased", (step("a"), step("b"), step("c"))), "k6")
    # Another process ran step a, then crashed while holding the lease.
    Saga.objects.filter(pk=saga_id).update(
        step=1,
        payload=json.dumps({"done": ["a"]}),
        lease_owner="crashed-worker",
        lease_until=timezone.now() + timedelta(seconds=60),
    )
    blocked = saga.run(saga_id)
    due_while_leased = saga.due_ids()
    ran_while_leased = list(ran)
    Saga.objects.filter(pk=saga_id).update(lease_until=timezone.now() - timedelta(seconds=1))
    due_after_expiry = saga.due_ids()
    final = saga.run(saga_id)
    return {
        "blocked": blocked.value,
        "ran_while_leased": ran_while_leased,
        "due_while_leased": due_while_leased,
        "due_after_expiry": due_after_expiry,
        "saga_id": saga_id,
        "final": final.value,
        "ran": ran,
        **state_of(saga_id),
    }


def case_local_writes_roll_back_with_a_failed_attempt() -> object:
    definition = SagaDefinition("local", (step("w", flaky=1, writes=True),))
    saga_id = start(definition, "k7")
    with saga.scheduler_installed(None):
        row = saga.drive(saga_id, wait_s=30)
    users = sorted(
        get_user_model()
        .objects.filter(username__startswith="k7-")
        .values_list("username", flat=True)
    )
    return {"final": row.state, "users": users, "ran": ran}


def case_start_is_idempotent_by_key() -> object:
    definition = saga.register(SagaDefinition("once", (step("a"),)))
    first, created_first = saga.start(definition, key="k8", subject="s8", payload={"n": 1})
    again, created_again = saga.start(definition, key="k8", subject="s8", payload={"n": 2})
    return {
        "same": first.pk == again.pk,
        "created": [created_first, created_again],
        "payload": json.loads(Saga.objects.get(pk=first.pk).payload),
        "active": saga.active_for("s8") is not None,
    }


CASES = {
    name.removeprefix("case_"): fn for name, fn in globals().items() if name.startswith("case_")
}

if __name__ == "__main__":
    print(json.dumps(CASES[sys.argv[1]](), default=str))
