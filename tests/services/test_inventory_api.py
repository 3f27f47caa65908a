"""The inventory API in every phase, on SQLite and PostgreSQL (in-process, real databases)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, select

from extracted_services.inventory.models import Reservation, StockLevel
from migration_plans.core.database import sqlalchemy_url
from migration_plans.core.outbox import outbox_table
from tests.services.conftest import identity_headers
from tests.services.seed import seed_for_phase

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def table_rows(url: str, table) -> list[dict[str, object]]:
    engine = create_engine(sqlalchemy_url(url))
    with engine.connect() as conn:
        rows = [dict(row) for row in conn.execute(select(table).order_by(table.c.id)).mappings()]
    engine.dispose()
    return rows


@pytest.mark.parametrize("phase", ["shared", "dual_write", "split"])
def test_reads_render_the_monolith_contract_in_every_phase(service_app, phase):
    client, stack = service_app("inventory", phase)
    seed_for_phase("inventory", phase, stack.monolith_url, stack.service_url)
    assert client.get("/api/v1/stock/2/").json() == {
        "id": 2,
        "product": 1,
        "warehouse": 2,
        "quantity": 3,
        "reserved": 1,
        "available": 2,
        "updated_at": "2026-11-20T09:30:02.123456Z",
    }
    listed = client.get("/api/v1/stock/?product=1&ordering=-quantity").json()
    assert [row["id"] for row in listed["results"]] == [1, 2]
    assert client.get("/api/v1/stock/?warehouse=2").json()["count"] == 2
    assert client.get("/api/v1/warehouses/?ordering=-code").json()["results"][0]["code"] == "SOUTH"
    assert client.get("/api/v1/warehouses/1/").json() == {"id": 1, "code": "NORTH", "name": "North"}
    invalid = client.get("/api/v1/stock/?warehouse=77")
    assert invalid.status_code == 400
    assert invalid.json()["fields"] == {
        "warehouse": ["Select a valid choice. That choice is not one of the available choices."]
    }


@pytest.mark.parametrize("phase", ["dual_write", "split"])
def test_reserve_and_release_move_stock_and_record_events(service_app, phase):
    client, stack = service_app("inventory", phase)
    seed_for_phase("inventory", phase, stack.monolith_url, stack.service_url)
    auth = {**identity_headers(), "X-Request-ID": "order-42"}

    reserved = client.post(
        "/api/v1/stock/reserve/",
        json={
            "order_id": 42,
            "lines": [{"product": 1, "quantity": 6}, {"product": 2, "quantity": 1}],
        },
        headers=auth,
    )
    assert reserved.status_code == 201, reserved.text
    assert reserved.json() == {
        "order_id": 42,
        "reservations": [
            {
                "id": 1,
                "stock_item": 1,
                "product": 1,
                "warehouse": 1,
                "quantity": 5,
                "released": False,
            },
            {
                "id": 2,
                "stock_item": 2,
                "product": 1,
                "warehouse": 2,
                "quantity": 1,
                "released": False,
            },
            {
                "id": 3,
                "stock_item": 3,
                "product": 2,
                "warehouse": 1,
                "quantity": 1,
                "released": False,
            },
        ],
    }
    assert client.get("/api/v1/stock/1/").json()["available"] == 0

    released = client.post("/api/v1/stock/release/", json={"order_id": 42}, headers=auth)
    assert released.status_code == 200
    assert [r["released"] for r in released.json()["reservations"]] == [True, True, True]
    assert client.get("/api/v1/stock/2/").json()["reserved"] == 1

    events = table_rows(stack.service_url, outbox_table)
    kinds = [(e["aggregate_type"], e["operation"]) for e in events]
    assert kinds[:6] == [("stock_levels", "update")] * 3 + [("reservations", "insert")] * 3
    assert kinds[6:] == [("reservations", "update")] * 3 + [("stock_levels", "update")] * 3
    assert {e["request_id"] for e in events} == {"order-42"}
    last_image = json.loads(str(events[-1]["payload"]))
    assert set(last_image) == {
        "id",
        "product_id",
        "warehouse_id",
        "on_hand",
        "reserved",
        "updated_at",
    }
    states = [r["state"] for r in table_rows(stack.service_url, Reservation.__table__)]
    assert states == ["released"] * 3


def test_insufficient_stock_is_409_and_changes_nothing(service_app, backend):
    client, stack = service_app("inventory", "dual_write")
    seed_for_phase("inventory", "dual_write", stack.monolith_url, stack.service_url)
    before = table_rows(stack.service_url, StockLevel.__table__)
    response = client.post(
        "/api/v1/stock/reserve/",
        json={
            "order_id": 7,
            "lines": [{"product": 2, "quantity": 1}, {"product": 3, "quantity": 1}],
        },
        headers=identity_headers(),
    )
    assert response.status_code == 409
    assert response.json() == {
        "code": "insufficient_stock",
        "detail": "Not enough stock for product 3: requested 1, available 0.",
    }
    assert table_rows(stack.service_url, StockLevel.__table__) == before
    assert table_rows(stack.service_url, Reservation.__table__) == []
    assert table_rows(stack.service_url, outbox_table) == []


@SQLITE_ONLY
def test_patch_sets_on_hand_but_never_below_reserved(service_app):
    client, stack = service_app("inventory", "split")
    seed_for_phase("inventory", "split", stack.monolith_url, stack.service_url)
    auth = identity_headers()
    assert (
        client.patch("/api/v1/stock/1/", json={"quantity": 9}, headers=auth).json()["quantity"] == 9
    )
    below = client.patch("/api/v1/stock/2/", json={"quantity": 0}, headers=auth)
    assert below.status_code == 400
    assert below.json()["fields"] == {
        "quantity": ["Ensure this value is greater than or equal to 1 (units reserved)."]
    }
    negative = client.patch("/api/v1/stock/2/", json={"quantity": -1}, headers=auth).json()
    assert negative["fields"] == {"quantity": ["Ensure this value is greater than or equal to 0."]}
    assert client.patch("/api/v1/stock/99/", json={"quantity": 1}, headers=auth).status_code == 404
    assert client.patch("/api/v1/stock/1/", json={"quantity": 1}).status_code == 401


@SQLITE_ONLY
def test_request_validation_and_release_errors(service_app):
    client, stack = service_app("inventory", "dual_write")
    seed_for_phase("inventory", "dual_write", stack.monolith_url, stack.service_url)
    auth = identity_headers()
    empty = client.post("/api/v1/stock/reserve/", json={"order_id": 0, "lines": []}, headers=auth)
    assert empty.json()["fields"] == {
        "order_id": ["Ensure this value is greater than or equal to 1."],
        "lines": ["This list may not be empty."],
    }
    nested = client.post(
        "/api/v1/stock/reserve/",
        json={"order_id": 1, "lines": [{"product": 1, "quantity": 0}, "x"]},
        headers=auth,
    ).json()
    assert nested["fields"] == {
        "lines.0.quantity": ["Ensure this value is greater than or equal to 1."],
        "lines.1": ["Invalid data. Expected a dictionary, but got str."],
    }
    missing = client.post("/api/v1/stock/release/", json={"order_id": 5}, headers=auth)
    assert missing.status_code == 404
    assert missing.json() == {"code": "not_found", "detail": "No reservations for order 5."}


@SQLITE_ONLY
def test_shared_phase_refuses_reserve(service_app):
    client, _ = service_app("inventory", "shared")
    response = client.post(
        "/api/v1/stock/reserve/",
        json={"order_id": 1, "lines": [{"product": 1, "quantity": 1}]},
        headers=identity_headers(),
    )
    assert response.status_code == 409 and response.json()["code"] == "phase_read_only"


RESERVE_42 = {
    "order_id": 42,
    "lines": [{"product": 1, "quantity": 6}, {"product": 2, "quantity": 1}],
}


def reserve_42(client, auth):
    response = client.post("/api/v1/stock/reserve/", json=RESERVE_42, headers=auth)
    assert response.status_code == 201, response.text
    return response


@pytest.mark.parametrize("phase", ["dual_write", "split"])
def test_a_retried_reserve_answers_200_with_the_same_reservations(service_app, phase):
    client, stack = service_app("inventory", phase)
    seed_for_phase("inventory", phase, stack.monolith_url, stack.service_url)
    auth = identity_headers()
    first = reserve_42(client, auth)
    levels = table_rows(stack.service_url, StockLevel.__table__)
    events = table_rows(stack.service_url, outbox_table)
    same_in_other_lines = {
        "order_id": 42,
        "lines": [
            {"product": 2, "quantity": 1},
            {"product": 1, "quantity": 4},
            {"product": 1, "quantity": 2},
        ],
    }
    for body in (RESERVE_42, same_in_other_lines):
        again = client.post("/api/v1/stock/reserve/", json=body, headers=auth)
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
    assert table_rows(stack.service_url, StockLevel.__table__) == levels
    assert len(table_rows(stack.service_url, Reservation.__table__)) == 3
    assert table_rows(stack.service_url, outbox_table) == events

    released = client.post("/api/v1/stock/release/", json={"order_id": 42}, headers=auth)
    after_release = client.post("/api/v1/stock/reserve/", json=RESERVE_42, headers=auth)
    assert (after_release.status_code, after_release.json()) == (200, released.json())
    assert client.get("/api/v1/stock/1/").json()["reserved"] == 0


def test_reserving_other_lines_for_an_order_is_409(service_app, backend):
    client, stack = service_app("inventory", "dual_write")
    seed_for_phase("inventory", "dual_write", stack.monolith_url, stack.service_url)
    auth = identity_headers()
    reserve_42(client, auth)
    levels = table_rows(stack.service_url, StockLevel.__table__)
    for lines in (
        [{"product": 1, "quantity": 6}, {"product": 2, "quantity": 2}],
        [{"product": 1, "quantity": 6}],
        [
            {"product": 1, "quantity": 6},
            {"product": 2, "quantity": 1},
            {"product": 3, "quantity": 1},
        ],
    ):
        response = client.post(
            "/api/v1/stock/reserve/", json={"order_id": 42, "lines": lines}, headers=auth
        )
        assert response.status_code == 409
        assert response.json() == {
            "code": "reservation_exists",
            "detail": "Order 42 already has reservations that differ from this request.",
        }
    assert table_rows(stack.service_url, StockLevel.__table__) == levels
    assert len(table_rows(stack.service_url, Reservation.__table__)) == 3


def on_hand_and_reserved(url: str) -> list[tuple[object, object]]:
    return [(row["on_hand"], row["reserved"]) for row in table_rows(url, StockLevel.__table__)]


@pytest.mark.parametrize("phase", ["dual_write", "split"])
def test_consume_ships_the_held_units_once(service_app, phase):
    client, stack = service_app("inventory", phase)
    seed_for_phase("inventory", phase, stack.monolith_url, stack.service_url)
    auth = identity_headers()
    reserved = reserve_42(client, auth).json()
    assert on_hand_and_reserved(stack.service_url) == [(5, 5), (3, 2), (10, 1), (0, 0)]
    events = len(table_rows(stack.service_url, outbox_table))

    consumed = client.post("/api/v1/stock/consume/", json={"order_id": 42}, headers=auth)
    assert consumed.status_code == 200, consumed.text
    assert consumed.json() == {
        "order_id": 42,
        "reservations": [{**r, "released": True} for r in reserved["reservations"]],
    }
    shipped = [(0, 0), (2, 1), (9, 0), (0, 0)]
    assert on_hand_and_reserved(stack.service_url) == shipped
    kinds = [
        (e["aggregate_type"], e["operation"])
        for e in table_rows(stack.service_url, outbox_table)[events:]
    ]
    assert kinds == [("reservations", "update")] * 3 + [("stock_levels", "update")] * 3

    for action in ("consume", "release"):
        again = client.post(f"/api/v1/stock/{action}/", json={"order_id": 42}, headers=auth)
        assert (again.status_code, again.json()) == (200, consumed.json())
    assert on_hand_and_reserved(stack.service_url) == shipped
    states = [r["state"] for r in table_rows(stack.service_url, Reservation.__table__)]
    assert states == ["released"] * 3


@SQLITE_ONLY
def test_consume_after_release_ships_nothing(service_app):
    client, stack = service_app("inventory", "split")
    seed_for_phase("inventory", "split", stack.monolith_url, stack.service_url)
    auth = identity_headers()
    reserve_42(client, auth)
    client.post("/api/v1/stock/release/", json={"order_id": 42}, headers=auth)
    before = on_hand_and_reserved(stack.service_url)
    consumed = client.post("/api/v1/stock/consume/", json={"order_id": 42}, headers=auth)
    assert consumed.status_code == 200
    assert on_hand_and_reserved(stack.service_url) == before == [(5, 0), (3, 1), (10, 0), (0, 0)]


@SQLITE_ONLY
def test_consume_errors(service_app):
    client, stack = service_app("inventory", "dual_write")
    seed_for_phase("inventory", "dual_write", stack.monolith_url, stack.service_url)
    auth = identity_headers()
    unknown = client.post("/api/v1/stock/consume/", json={"order_id": 5}, headers=auth)
    assert unknown.status_code == 404
    assert unknown.json() == {"code": "not_found", "detail": "No reservations for order 5."}
    invalid = client.post("/api/v1/stock/consume/", json={"order_id": "abc"}, headers=auth)
    assert invalid.json()["fields"] == {"order_id": ["A valid integer is required."]}
    assert client.get("/api/v1/stock/consume/", headers=auth).status_code == 405
    assert client.post("/api/v1/stock/consume/", json={"order_id": 1}).status_code == 401


@SQLITE_ONLY
def test_shared_phase_refuses_consume(service_app):
    client, _ = service_app("inventory", "shared")
    response = client.post(
        "/api/v1/stock/consume/", json={"order_id": 1}, headers=identity_headers()
    )
    assert response.status_code == 409 and response.json()["code"] == "phase_read_only"
