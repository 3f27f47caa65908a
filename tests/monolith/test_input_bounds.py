"""The monolith refuses what its database cannot hold with a 400, never a 500 (issue #17),
and its OpenAPI document lists the error responses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

MakeProduct = Callable[..., dict[str, Any]]


def test_category_filter_takes_digits_only(anon: httpx.Client) -> None:
    for raw in ("-1e300", "1e300000", "1.5", "7.89e+37", "0x1A"):
        response = anon.get("/api/v1/products/", params={"category": raw})
        assert response.status_code == 400, (raw, response.text)
        assert response.json()["fields"] == {"category": ["Enter a whole number."]}


def test_category_filter_past_64_bits_matches_nothing(anon: httpx.Client) -> None:
    for raw in ("99999999999999999999", "-9223372036854775809"):
        response = anon.get("/api/v1/products/", params={"category": raw})
        assert response.status_code == 200, (raw, response.text)
        assert response.json()["count"] == 0


def test_quantities_and_order_ids_beyond_their_columns_are_400(
    staff: httpx.Client, make_product: MakeProduct
) -> None:
    product = make_product(stock=5)
    item = product["stock_item"]
    patched = staff.patch(f"/api/v1/stock/{item['id']}/", json={"quantity": 2**63})
    assert patched.status_code == 400, patched.text
    assert patched.json()["fields"] == {
        "quantity": ["Ensure this value is less than or equal to 2147483647."]
    }
    line = {"product": product["id"], "quantity": 1}
    reserve = staff.post("/api/v1/stock/reserve/", json={"order_id": 2**63, "lines": [line]})
    assert reserve.status_code == 400, reserve.text
    assert list(reserve.json()["fields"]) == ["order_id"]
    release = staff.post("/api/v1/stock/release/", json={"order_id": 2**63})
    assert release.status_code == 400, release.text


def test_a_float_is_not_a_key(staff: httpx.Client, make_product: MakeProduct) -> None:
    product = make_product()
    body = {"sku": "F-1", "name": "n", "price": "1.00", "category": float(product["category"])}
    response = staff.post("/api/v1/products/", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["fields"] == {
        "category": ["Incorrect type. Expected pk value, received float."]
    }


def test_openapi_documents_the_error_responses(anon: httpx.Client) -> None:
    document = anon.get("/api/v1/schema/", params={"format": "json"}).json()
    create = document["paths"]["/api/v1/products/"]["post"]["responses"]
    assert {"400", "401", "403", "404", "405", "409", "415", "429"} <= set(create)
    assert create["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ValidationError"
    }
    detail = document["paths"]["/api/v1/products/{id}/"]["get"]["responses"]
    assert {"404", "405"} <= set(detail)
    assert document["components"]["schemas"]["Error"]["required"] == ["code", "detail"]
