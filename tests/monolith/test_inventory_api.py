"""Warehouses, stock levels, reserve and release over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from .conftest import unique

MakeProduct = Callable[..., dict[str, Any]]


def test_warehouse_crud(staff: httpx.Client, anon: httpx.Client) -> None:
    code = unique("W")[:16]
    created = staff.post("/api/v1/warehouses/", json={"code": code, "name": "North"})
    assert created.status_code == 201
    warehouse = created.json()
    assert warehouse == {"id": warehouse["id"], "code": code, "name": "North"}
    assert anon.get(f"/api/v1/warehouses/{warehouse['id']}/").json() == warehouse
    duplicate = staff.post("/api/v1/warehouses/", json={"code": code, "name": "Again"})
    assert duplicate.status_code == 400
    assert list(duplicate.json()["fields"]) == ["code"]
    listing = anon.get("/api/v1/warehouses/", params={"ordering": "-id", "page_size": 1}).json()
    assert listing["results"][0]["id"] >= warehouse["id"]
    url = f"/api/v1/warehouses/{warehouse['id']}/"
    assert staff.patch(url, json={"name": "South"}).json()["name"] == "South"
    assert staff.delete(url).status_code == 204
    assert anon.get(url).status_code == 404


def test_stock_item_representation_and_filters(
    anon: httpx.Client, make_product: MakeProduct
) -> None:
    product = make_product(stock=7)
    item = product["stock_item"]
    assert list(item) == [
        "id", "product", "warehouse", "quantity", "reserved", "available", "updated_at",
    ]  # fmt: skip
    assert (item["quantity"], item["reserved"], item["available"]) == (7, 0, 7)
    listing = anon.get("/api/v1/stock/", params={"product": product["id"]}).json()
    assert [row["id"] for row in listing["results"]] == [item["id"]]
    by_warehouse = anon.get("/api/v1/stock/", params={"warehouse": item["warehouse"]}).json()
    assert by_warehouse["count"] == 1


def test_duplicate_stock_item_is_rejected(staff: httpx.Client, make_product: MakeProduct) -> None:
    item = make_product(stock=1)["stock_item"]
    again = staff.post(
        "/api/v1/stock/",
        json={"product": item["product"], "warehouse": item["warehouse"], "quantity": 3},
    )
    assert again.status_code == 400
    assert again.json()["fields"] == {
        "non_field_errors": ["The fields product, warehouse must make a unique set."]
    }


def test_patch_adjusts_quantity(
    staff: httpx.Client, anon: httpx.Client, make_product: MakeProduct
) -> None:
    item = make_product(stock=3)["stock_item"]
    url = f"/api/v1/stock/{item['id']}/"
    patched = staff.patch(url, json={"quantity": 12})
    assert patched.status_code == 200
    assert (patched.json()["quantity"], patched.json()["available"]) == (12, 12)
    negative = staff.patch(url, json={"quantity": -1})
    assert negative.status_code == 400
    assert negative.json()["fields"] == {
        "quantity": ["Ensure this value is greater than or equal to 0."]
    }
    assert anon.patch(url, json={"quantity": 1}).status_code == 401
    assert staff.put(url, json={"quantity": 1}).status_code == 405


def test_reserve_and_release(staff: httpx.Client, make_product: MakeProduct) -> None:
    product = make_product(stock=5)
    item = product["stock_item"]
    body = {"order_id": 900001, "lines": [{"product": product["id"], "quantity": 2}]}
    reserved = staff.post("/api/v1/stock/reserve/", json=body)
    assert reserved.status_code == 201
    reservation = reserved.json()["reservations"][0]
    assert reserved.json() == {
        "order_id": 900001,
        "reservations": [
            {"id": reservation["id"], "stock_item": item["id"], "product": product["id"],
             "warehouse": item["warehouse"], "quantity": 2, "released": False},
        ],
    }  # fmt: skip
    level = staff.get(f"/api/v1/stock/{item['id']}/").json()
    assert (level["quantity"], level["reserved"], level["available"]) == (5, 2, 3)
    too_low = staff.patch(f"/api/v1/stock/{item['id']}/", json={"quantity": 1})
    assert too_low.status_code == 400
    released = staff.post("/api/v1/stock/release/", json={"order_id": 900001})
    assert released.status_code == 200
    assert released.json()["reservations"] == [{**reservation, "released": True}]
    assert staff.get(f"/api/v1/stock/{item['id']}/").json()["reserved"] == 0


def test_reserve_spreads_over_warehouses(staff: httpx.Client, make_product: MakeProduct) -> None:
    product = make_product(stock=2)
    warehouse = staff.post("/api/v1/warehouses/", json={"code": unique("W")[:16], "name": "B"})
    staff.post(
        "/api/v1/stock/",
        json={"product": product["id"], "warehouse": warehouse.json()["id"], "quantity": 4},
    )
    body = {"order_id": 900002, "lines": [{"product": product["id"], "quantity": 5}]}
    reservations = staff.post("/api/v1/stock/reserve/", json=body).json()["reservations"]
    assert [r["quantity"] for r in reservations] == [2, 3]


def test_insufficient_stock_is_409_and_reserves_nothing(
    staff: httpx.Client, make_product: MakeProduct
) -> None:
    plenty, scarce = make_product(stock=10), make_product(stock=1)
    body = {
        "order_id": 900003,
        "lines": [
            {"product": plenty["id"], "quantity": 1},
            {"product": scarce["id"], "quantity": 2},
        ],
    }
    response = staff.post("/api/v1/stock/reserve/", json=body)
    assert response.status_code == 409
    assert response.json() == {
        "code": "insufficient_stock",
        "detail": f"Not enough stock for product {scarce['id']}: requested 2, available 1.",
    }
    assert staff.get(f"/api/v1/stock/{plenty['stock_item']['id']}/").json()["reserved"] == 0


def test_reserve_validation_and_auth(staff: httpx.Client, anon: httpx.Client) -> None:
    bad = staff.post(
        "/api/v1/stock/reserve/", json={"order_id": 0, "lines": [{"product": 10**9, "quantity": 0}]}
    )
    assert bad.status_code == 400
    assert bad.json()["fields"] == {
        "order_id": ["Ensure this value is greater than or equal to 1."],
        "lines.0.product": [f'Invalid pk "{10**9}" - object does not exist.'],
        "lines.0.quantity": ["Ensure this value is greater than or equal to 1."],
    }
    empty = staff.post("/api/v1/stock/reserve/", json={"order_id": 1, "lines": []})
    assert empty.json()["fields"] == {"lines": ["This list may not be empty."]}
    assert anon.post("/api/v1/stock/reserve/", json={"order_id": 1, "lines": []}).status_code == 401
    unknown = staff.post("/api/v1/stock/release/", json={"order_id": 987654321})
    assert unknown.status_code == 404
    assert unknown.json() == {"code": "not_found", "detail": "No reservations for order 987654321."}


def _levels(client: httpx.Client, item_id: int) -> tuple[int, int]:
    level = client.get(f"/api/v1/stock/{item_id}/").json()
    return level["quantity"], level["reserved"]


def test_retried_reserve_answers_200_with_the_same_reservations(
    staff: httpx.Client, make_product: MakeProduct
) -> None:
    product = make_product(stock=5)
    item_id = product["stock_item"]["id"]
    body = {"order_id": 900011, "lines": [{"product": product["id"], "quantity": 2}]}
    first = staff.post("/api/v1/stock/reserve/", json=body)
    assert first.status_code == 201
    same_in_two_lines = {
        "order_id": 900011,
        "lines": [{"product": product["id"], "quantity": 1}] * 2,
    }
    for retry in (body, same_in_two_lines):
        again = staff.post("/api/v1/stock/reserve/", json=retry)
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
    assert _levels(staff, item_id) == (5, 2)
    released = staff.post("/api/v1/stock/release/", json={"order_id": 900011}).json()
    assert [r["id"] for r in released["reservations"]] == [
        r["id"] for r in first.json()["reservations"]
    ]
    after_release = staff.post("/api/v1/stock/reserve/", json=body)
    assert after_release.status_code == 200
    assert after_release.json() == released
    assert _levels(staff, item_id) == (5, 0)


def test_reserving_other_lines_for_an_order_is_409(
    staff: httpx.Client, make_product: MakeProduct
) -> None:
    first, second = make_product(stock=5), make_product(stock=5)
    line = {"product": first["id"], "quantity": 2}
    assert (
        staff.post("/api/v1/stock/reserve/", json={"order_id": 900012, "lines": [line]}).status_code
        == 201
    )
    for lines in (
        [{**line, "quantity": 3}],
        [line, {"product": second["id"], "quantity": 1}],
        [{"product": second["id"], "quantity": 2}],
    ):
        response = staff.post("/api/v1/stock/reserve/", json={"order_id": 900012, "lines": lines})
        assert response.status_code == 409
        assert response.json() == {
            "code": "reservation_exists",
            "detail": "Order 900012 already has reservations that differ from this request.",
        }
    assert _levels(staff, first["stock_item"]["id"]) == (5, 2)
    assert _levels(staff, second["stock_item"]["id"]) == (5, 0)


def test_consume_ships_the_held_units_once(staff: httpx.Client, make_product: MakeProduct) -> None:
    product = make_product(stock=5)
    item_id = product["stock_item"]["id"]
    body = {"order_id": 900013, "lines": [{"product": product["id"], "quantity": 2}]}
    reservation = staff.post("/api/v1/stock/reserve/", json=body).json()["reservations"][0]
    consumed = staff.post("/api/v1/stock/consume/", json={"order_id": 900013})
    assert consumed.status_code == 200
    assert consumed.json() == {
        "order_id": 900013,
        "reservations": [{**reservation, "released": True}],
    }
    assert _levels(staff, item_id) == (3, 0)
    again = staff.post("/api/v1/stock/consume/", json={"order_id": 900013})
    assert (again.status_code, again.json()) == (200, consumed.json())
    released = staff.post("/api/v1/stock/release/", json={"order_id": 900013})
    assert (released.status_code, released.json()) == (200, consumed.json())
    assert _levels(staff, item_id) == (3, 0)


def test_consume_after_release_ships_nothing(
    staff: httpx.Client, make_product: MakeProduct
) -> None:
    product = make_product(stock=4)
    body = {"order_id": 900014, "lines": [{"product": product["id"], "quantity": 3}]}
    assert staff.post("/api/v1/stock/reserve/", json=body).status_code == 201
    assert staff.post("/api/v1/stock/release/", json={"order_id": 900014}).status_code == 200
    assert staff.post("/api/v1/stock/consume/", json={"order_id": 900014}).status_code == 200
    assert _levels(staff, product["stock_item"]["id"]) == (4, 0)


def test_consume_errors(staff: httpx.Client, anon: httpx.Client) -> None:
    unknown = staff.post("/api/v1/stock/consume/", json={"order_id": 987654322})
    assert unknown.status_code == 404
    assert unknown.json() == {"code": "not_found", "detail": "No reservations for order 987654322."}
    invalid = staff.post("/api/v1/stock/consume/", json={"order_id": "abc"})
    assert invalid.json()["fields"] == {"order_id": ["A valid integer is required."]}
    assert staff.get("/api/v1/stock/consume/").status_code == 405
    assert anon.post("/api/v1/stock/consume/", json={"order_id": 1}).status_code == 401
