"""The payments API in every phase, on SQLite and PostgreSQL (in-process, real databases)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from extracted_services.common.changes import ChangeRecorder
from extracted_services.common.database import service_engine, session_factory
from extracted_services.payments import crud
from extracted_services.payments.models import Payment
from migration_plans.control.processes import wait_until
from migration_plans.core.database import sqlalchemy_url
from migration_plans.core.outbox import outbox_table
from migration_plans.testing.databases import lock_waiters
from tests.services.conftest import identity_headers
from tests.services.payments_seed import ALICE, BOB, STAFF, seed_payments

PG_ONLY = pytest.mark.parametrize("backend", ["pg"], indirect=True)
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

FIRST = {
    "id": 1,
    "order": 1,
    "amount": "79.19",
    "currency": "EUR",
    "status": "succeeded",
    "provider_reference": "ch_one",
    "card_last4": "4242",
    "created_at": "2026-11-20T09:30:00.123456Z",
    "updated_at": "2026-11-20T09:30:01.123456Z",
}


def count_of(url: str, table: Any, *where: Any) -> int:
    engine = create_engine(sqlalchemy_url(url))
    with engine.connect() as conn:
        found = int(
            conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
        )
    engine.dispose()
    return found


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["results"]]


@pytest.mark.parametrize("phase", ["shared", "dual_write", "split"])
def test_reads_render_the_monolith_contract_in_every_phase(service_app, phase):
    client, stack = service_app("payments", phase)
    seed_payments(phase, stack.monolith_url, stack.service_url)
    staff, alice, bob = (identity_headers(user) for user in (STAFF, ALICE, BOB))

    assert client.get("/api/v1/payments/1/", headers=staff).json() == FIRST
    listed = client.get("/api/v1/payments/", headers=staff).json()
    assert (listed["count"], listed["next"], listed["previous"]) == (3, None, None)
    assert listed["results"][0] == FIRST
    assert listed["results"][2]["amount"] == "120.50"
    assert ids(client.get("/api/v1/payments/", headers=alice)) == [1, 2]
    assert ids(client.get("/api/v1/payments/", headers=bob)) == [3]
    assert client.get("/api/v1/payments/1/", headers=alice).json() == FIRST
    assert client.get("/api/v1/payments/3/", headers=alice).json() == {
        "code": "not_found",
        "detail": "Not found.",
    }
    assert ids(client.get("/api/v1/payments/?ordering=-amount", headers=staff)) == [3, 1, 2]
    assert ids(client.get("/api/v1/payments/?status=refunded", headers=staff)) == [2]
    assert ids(client.get("/api/v1/payments/?order=3", headers=alice)) == []
    assert ids(client.get("/api/v1/payments/?order=4", headers=staff)) == []
    invalid = client.get("/api/v1/payments/?order=99&status=paid", headers=staff)
    assert invalid.status_code == 400
    assert invalid.json()["fields"] == {
        "order": ["Select a valid choice. That choice is not one of the available choices."],
        "status": ["Select a valid choice. paid is not one of the available choices."],
    }
    anonymous = client.get("/api/v1/payments/")
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "not_authenticated")
    assert client.get("/api/v1/payments/1/").status_code == 401
    assert client.get("/api/v1/payments/x/", headers=staff).status_code == 404


def charge_body(order_id: int = 4, **overrides: Any) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "amount_cents": 4250,
        "currency": "EUR",
        "token": "tok_visa_4242",
        **overrides,
    }


@pytest.mark.parametrize("phase", ["dual_write", "split"])
def test_a_charge_is_created_once_per_order_and_recorded(service_app, phase):
    client, stack = service_app("payments", phase)
    seed_payments(phase, stack.monolith_url, stack.service_url)
    staff = {**identity_headers(STAFF), "X-Request-ID": "saga-4"}

    first = client.post("/api/v1/payments/charge/", json=charge_body(), headers=staff)
    assert first.status_code == 201, first.text
    payment = first.json()
    assert (payment["order"], payment["amount"], payment["status"]) == (4, "42.50", "succeeded")
    assert payment["card_last4"] == "4242"
    assert payment["provider_reference"].startswith("ch_")
    again = client.post("/api/v1/payments/charge/", json=charge_body(), headers=staff)
    assert (again.status_code, again.json()) == (200, payment)
    other = client.post("/api/v1/payments/charge/", json=charge_body(amount_cents=1), headers=staff)
    assert (other.status_code, other.json()["code"]) == (409, "invalid_state")
    assert count_of(stack.service_url, Payment.__table__, Payment.order_id == 4) == 1
    assert client.get(f"/api/v1/payments/{payment['id']}/", headers=staff).json() == payment

    expected_events = 1 if phase == "dual_write" or stack.app.state.settings.reverse_sync else 0
    events = count_of(stack.service_url, outbox_table, outbox_table.c.request_id == "saga-4")
    assert events == expected_events


@pytest.mark.parametrize("phase", ["dual_write", "split"])
def test_a_declined_card_is_402_and_writes_nothing(service_app, phase):
    client, stack = service_app("payments", phase)
    seed_payments(phase, stack.monolith_url, stack.service_url)
    declined = client.post(
        "/api/v1/payments/charge/",
        json=charge_body(token="tok_declined"),
        headers=identity_headers(STAFF),
    )
    assert declined.status_code == 402
    assert declined.json() == {"code": "payment_failed", "detail": "The card was declined."}
    assert count_of(stack.service_url, Payment.__table__) == 3
    assert count_of(stack.service_url, outbox_table) == 0


def test_invalid_charge_bodies_answer_like_drf(service_app):
    client, stack = service_app("payments", "dual_write")
    seed_payments("dual_write", stack.monolith_url, stack.service_url)
    invalid = client.post(
        "/api/v1/payments/charge/",
        json={"order_id": 0, "amount_cents": -1, "currency": "EURO"},
        headers=identity_headers(STAFF),
    )
    assert invalid.status_code == 400
    assert set(invalid.json()["fields"]) == {"order_id", "amount_cents", "currency", "token"}
    unknown = client.post(
        "/api/v1/payments/charge/", json=charge_body(order_id=99), headers=identity_headers(STAFF)
    )
    assert unknown.status_code == 400
    assert unknown.json()["fields"] == {"order_id": ['Invalid pk "99" - object does not exist.']}


def test_refund_is_idempotent_and_recorded_once(service_app):
    client, stack = service_app("payments", "dual_write")
    seed_payments("dual_write", stack.monolith_url, stack.service_url)
    staff = identity_headers(STAFF)

    refunded = client.post("/api/v1/payments/1/refund/", headers=staff)
    assert refunded.status_code == 200, refunded.text
    body = refunded.json()
    assert body["status"] == "refunded"
    assert body["updated_at"] > FIRST["updated_at"]
    assert {key: value for key, value in body.items() if key not in {"status", "updated_at"}} == {
        key: value for key, value in FIRST.items() if key not in {"status", "updated_at"}
    }
    again = client.post("/api/v1/payments/1/refund/", headers=staff)
    assert (again.status_code, again.json()) == (200, body)
    assert count_of(stack.service_url, outbox_table) == 1
    missing = client.post("/api/v1/payments/99/refund/", headers=staff)
    assert missing.status_code == 404


def test_writes_need_a_staff_identity_and_are_refused_in_shared(service_app):
    client, stack = service_app("payments", "dual_write")
    seed_payments("dual_write", stack.monolith_url, stack.service_url)
    for path, body in (
        ("/api/v1/payments/charge/", charge_body()),
        ("/api/v1/payments/1/refund/", {}),
    ):
        anonymous = client.post(path, json=body)
        assert (anonymous.status_code, anonymous.json()["code"]) == (401, "not_authenticated")
        forged = client.post(path, json=body, headers=identity_headers(STAFF, key="wrong"))
        assert (forged.status_code, forged.json()["code"]) == (401, "authentication_failed")
        customer = client.post(path, json=body, headers=identity_headers(ALICE))
        assert (customer.status_code, customer.json()["code"]) == (403, "permission_denied")
    assert count_of(stack.service_url, Payment.__table__) == 3
    assert count_of(stack.service_url, outbox_table) == 0


def test_writes_are_409_in_the_shared_phase(service_app):
    client, stack = service_app("payments", "shared")
    seed_payments("shared", stack.monolith_url, stack.service_url)
    staff = identity_headers(STAFF)
    for path, body in (
        ("/api/v1/payments/charge/", charge_body()),
        ("/api/v1/payments/1/refund/", {}),
    ):
        refused = client.post(path, json=body, headers=staff)
        assert (refused.status_code, refused.json()["code"]) == (409, "phase_read_only")
        assert client.post(path, json=body).status_code == 401
    assert client.get("/api/v1/payments/1/", headers=staff).json() == FIRST


def test_concurrent_http_charges_of_one_order_make_one_payment(service_app):
    client, stack = service_app("payments", "dual_write")
    seed_payments("dual_write", stack.monolith_url, stack.service_url)
    staff = identity_headers(STAFF)
    start = threading.Barrier(6)
    answers: list[tuple[int, int]] = []

    def buyer() -> None:
        start.wait(timeout=30)
        response = client.post("/api/v1/payments/charge/", json=charge_body(), headers=staff)
        answers.append((response.status_code, response.json().get("id", 0)))

    threads = [threading.Thread(target=buyer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(status for status, _ in answers) == [200] * 5 + [201]
    assert len({key for _, key in answers}) == 1
    assert count_of(stack.service_url, Payment.__table__, Payment.order_id == 4) == 1


@PG_ONLY
def test_a_charge_that_loses_the_race_on_the_unique_key_returns_the_winner(service_app):
    """The second charge's insert waits on the first's uncommitted row, then fails on the
    unique key: its savepoint (row and outbox event) is rolled back and it returns the winner."""
    _, stack = service_app("payments", "dual_write")
    seed_payments("dual_write", stack.monolith_url, stack.service_url)
    engine = service_engine(stack.service_url)
    sessions = session_factory(engine)
    request = crud.ChargeRequest(4, 4250, "EUR", "tok_visa")
    changes = ChangeRecorder("payments", stack.app.state.live.serving.sink)
    loser: dict[str, Any] = {}

    def second() -> None:
        with sessions() as session, session.begin():
            loser["payment"], loser["created"] = crud.charge(session, request, changes=changes)
            loser["id"] = loser["payment"].id

    with sessions() as session, session.begin():
        winner, created = crud.charge(session, request, changes=changes)
        assert created
        thread = threading.Thread(target=second)
        thread.start()
        wait_until(
            lambda: lock_waiters(stack.service_url) > 0,
            timeout=30,
            interval=0.02,
            what="second charge blocked",
        )
    thread.join(timeout=30)
    engine.dispose()
    assert (loser["created"], loser["id"]) == (False, winner.id)
    assert count_of(stack.service_url, Payment.__table__, Payment.order_id == 4) == 1
    assert count_of(stack.service_url, outbox_table) == 1
