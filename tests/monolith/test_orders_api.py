"""Placing orders (one transaction across contexts), payments, cancellation and shipping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

MakeProduct = Callable[..., dict[str, Any]]


def place(client: httpx.Client, *lines: tuple[int, int], token: str = "tok_visa") -> httpx.Response:
    body = {
        "lines": [{"product": product, "quantity": quantity} for product, quantity in lines],
        "payment_token": token,
    }
    return client.post("/api/v1/orders/", json=body)


def stock_of(client: httpx.Client, product: dict[str, Any]) -> dict[str, Any]:
    return dict(client.get(f"/api/v1/stock/{product['stock_item']['id']}/").json())


def test_place_order(customer: httpx.Client, make_product: MakeProduct) -> None:
    boots, socks = make_product(price="79.19", stock=5), make_product(price="2.50", stock=10)
    response = place(customer, (boots["id"], 2), (socks["id"], 3))
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "paid"
    assert order["total"] == "165.88"
    assert [(line["product"], line["quantity"], line["unit_price"]) for line in order["lines"]] == [
        (boots["id"], 2, "79.19"),
        (socks["id"], 3, "2.50"),
    ]
    assert stock_of(customer, boots)["reserved"] == 2
    assert customer.get(f"/api/v1/orders/{order['id']}/").json() == order
    payments = customer.get("/api/v1/payments/", params={"order": order["id"]}).json()["results"]
    assert [(p["amount"], p["status"]) for p in payments] == [("165.88", "succeeded")]
    payment = customer.get(f"/api/v1/payments/{payments[0]['id']}/").json()
    assert payment == payments[0]
    assert payment["provider_reference"].startswith("ch_")


def test_unit_price_is_a_snapshot(
    customer: httpx.Client, staff: httpx.Client, make_product: MakeProduct
) -> None:
    product = make_product(price="10.00", stock=3)
    order = place(customer, (product["id"], 1)).json()
    staff.patch(f"/api/v1/products/{product['id']}/", json={"price": "99.00"})
    again = customer.get(f"/api/v1/orders/{order['id']}/").json()
    assert again["lines"][0]["unit_price"] == "10.00"
    assert place(customer, (product["id"], 1)).json()["total"] == "99.00"


def test_declined_payment_rolls_everything_back(
    customer: httpx.Client, make_product: MakeProduct
) -> None:
    product = make_product(stock=5)
    before = customer.get("/api/v1/orders/").json()["count"]
    response = place(customer, (product["id"], 2), token="tok_declined")
    assert response.status_code == 402
    assert response.json() == {"code": "payment_failed", "detail": "The card was declined."}
    assert customer.get("/api/v1/orders/").json()["count"] == before
    assert stock_of(customer, product)["reserved"] == 0


def test_insufficient_stock_places_nothing(
    customer: httpx.Client, make_product: MakeProduct
) -> None:
    plenty, scarce = make_product(stock=9), make_product(stock=1)
    before = customer.get("/api/v1/orders/").json()["count"]
    response = place(customer, (plenty["id"], 1), (scarce["id"], 2))
    assert response.status_code == 409
    assert response.json()["code"] == "insufficient_stock"
    assert customer.get("/api/v1/orders/").json()["count"] == before
    assert stock_of(customer, plenty)["reserved"] == 0


def test_inactive_product_cannot_be_ordered(
    customer: httpx.Client, make_product: MakeProduct
) -> None:
    product = make_product(stock=3, is_active=False)
    response = place(customer, (product["id"], 1))
    assert response.status_code == 409
    assert response.json() == {
        "code": "invalid_state",
        "detail": f"Product {product['id']} is not available.",
    }


def test_order_validation_and_auth(
    customer: httpx.Client, anon: httpx.Client, make_product: MakeProduct
) -> None:
    product = make_product(stock=3)
    response = customer.post(
        "/api/v1/orders/",
        json={"lines": [{"product": product["id"], "quantity": 1}] * 2 + [{"quantity": 0}]},
    )
    assert response.status_code == 400
    assert response.json()["fields"] == {
        "lines.2.product": ["This field is required."],
        "lines.2.quantity": ["Ensure this value is greater than or equal to 1."],
        "payment_token": ["This field is required."],
    }
    duplicate = place(customer, (product["id"], 1), (product["id"], 1))
    assert duplicate.json()["fields"] == {"lines": ["Each product may appear in one line only."]}
    assert place(anon, (product["id"], 1)).status_code == 401
    assert anon.get("/api/v1/orders/").status_code == 401


def test_orders_are_private(
    customer: httpx.Client, staff: httpx.Client, anon: httpx.Client, make_product: MakeProduct,
    monolith: Any,
) -> None:  # fmt: skip
    from .conftest import sign_up

    product = make_product(stock=3)
    order = place(customer, (product["id"], 1)).json()
    stranger = monolith.client(sign_up(anon))
    assert stranger.get(f"/api/v1/orders/{order['id']}/").status_code == 404
    assert stranger.get("/api/v1/payments/").json()["count"] == 0
    assert staff.get(f"/api/v1/orders/{order['id']}/").status_code == 200


def test_cancel_releases_stock_and_refunds(
    customer: httpx.Client, make_product: MakeProduct
) -> None:
    product = make_product(stock=4)
    order = place(customer, (product["id"], 3)).json()
    cancelled = customer.post(f"/api/v1/orders/{order['id']}/cancel/")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert stock_of(customer, product)["reserved"] == 0
    payment = customer.get("/api/v1/payments/", params={"order": order["id"]}).json()["results"][0]
    assert payment["status"] == "refunded"
    again = customer.post(f"/api/v1/orders/{order['id']}/cancel/")
    assert again.status_code == 409
    assert again.json()["code"] == "invalid_state"


def test_shipping_consumes_reserved_stock(
    customer: httpx.Client, staff: httpx.Client, make_product: MakeProduct
) -> None:
    product = make_product(stock=6)
    order = place(customer, (product["id"], 2)).json()
    assert (
        customer.post(
            "/api/v1/shipments/", json={"order": order["id"], "carrier": "DHL"}
        ).status_code
        == 403
    )
    shipped = staff.post("/api/v1/shipments/", json={"order": order["id"], "carrier": "DHL"})
    assert shipped.status_code == 201
    shipment = shipped.json()
    assert (shipment["order"], shipment["status"], shipment["delivered_at"]) == (
        order["id"],
        "shipped",
        None,
    )
    level = stock_of(customer, product)
    assert (level["quantity"], level["reserved"]) == (4, 0)
    assert customer.get(f"/api/v1/orders/{order['id']}/").json()["status"] == "shipped"
    assert customer.get("/api/v1/shipments/", params={"order": order["id"]}).json()["count"] == 1
    assert customer.get(f"/api/v1/shipments/{shipment['id']}/").json() == shipment
    twice = staff.post("/api/v1/shipments/", json={"order": order["id"], "carrier": "UPS"})
    assert twice.status_code == 409
    delivered = staff.post(f"/api/v1/shipments/{shipment['id']}/deliver/")
    assert delivered.json()["status"] == "delivered"
    assert staff.post(f"/api/v1/shipments/{shipment['id']}/deliver/").status_code == 409
    assert customer.post(f"/api/v1/orders/{order['id']}/cancel/").status_code == 409
