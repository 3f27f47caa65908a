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
