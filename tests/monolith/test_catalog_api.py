"""Categories and products over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx

from .conftest import unique

DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def test_category_crud(staff: httpx.Client, anon: httpx.Client) -> None:
    name = unique("Garden")
    created = staff.post("/api/v1/categories/", json={"name": name, "slug": name.lower()})
    assert created.status_code == 201
    category = created.json()
    assert category == {"id": category["id"], "name": name, "slug": name.lower(), "description": ""}
    url = f"/api/v1/categories/{category['id']}/"
    assert anon.get(url).json() == category
    patched = staff.patch(url, json={"description": "Plants and tools"})
    assert patched.json()["description"] == "Plants and tools"
    assert staff.delete(url).status_code == 204
    assert anon.get(url).status_code == 404


def test_category_validation_errors(staff: httpx.Client) -> None:
    name = unique("Dup")
    assert staff.post("/api/v1/categories/", json={"name": name, "slug": name}).status_code == 201
    response = staff.post("/api/v1/categories/", json={"name": name, "slug": "not a slug"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert body["detail"] == "Invalid input."
    assert body["fields"]["name"] == ["category with this name already exists."]
    assert set(body["fields"]) == {"name", "slug"}


def test_product_representation(make_product: Callable[..., dict[str, Any]]) -> None:
    product = make_product(price="79.19", description="Waterproof")
    assert list(product) == [
        "id", "sku", "name", "description", "price", "is_active", "category",
        "created_at", "updated_at",
    ]  # fmt: skip
    assert product["price"] == "79.19"
    assert product["is_active"] is True
    assert DATETIME.match(str(product["created_at"]))
    assert DATETIME.match(str(product["updated_at"]))


def test_product_update_and_delete(
    staff: httpx.Client, make_product: Callable[..., dict[str, Any]]
) -> None:
    product = make_product(price="5.00")
    url = f"/api/v1/products/{product['id']}/"
    updated = staff.patch(url, json={"price": "6.5", "is_active": False})
    assert updated.status_code == 200
    assert updated.json()["price"] == "6.50"
    assert updated.json()["is_active"] is False
    assert updated.json()["updated_at"] >= str(product["updated_at"])
    full = staff.put(url, json={**updated.json(), "name": "Renamed"})
    assert full.status_code == 200 and full.json()["name"] == "Renamed"
    assert staff.delete(url).status_code == 204
    assert staff.get(url).json() == {"code": "not_found", "detail": "Not found."}


def test_product_validation_errors(staff: httpx.Client) -> None:
    response = staff.post(
        "/api/v1/products/", json={"sku": "x" * 40, "price": "12.345", "category": 999999}
    )
    assert response.status_code == 400
    fields = response.json()["fields"]
    assert set(fields) == {"sku", "name", "price", "category"}
    assert fields["name"] == ["This field is required."]
    assert fields["category"] == ['Invalid pk "999999" - object does not exist.']


def test_duplicate_sku_is_rejected(
    staff: httpx.Client, make_product: Callable[..., dict[str, Any]]
) -> None:
    product = make_product()
    again = staff.post(
        "/api/v1/products/",
        json={
            "sku": product["sku"],
            "name": "Other",
            "price": "1.00",
            "category": product["category"],
        },
    )
    assert again.status_code == 400
    assert again.json()["fields"] == {"sku": ["product with this sku already exists."]}


def test_category_with_products_cannot_be_deleted(
    staff: httpx.Client, make_product: Callable[..., dict[str, Any]]
) -> None:
    product = make_product()
    response = staff.delete(f"/api/v1/categories/{product['category']}/")
    assert response.status_code == 409
    assert response.json()["code"] == "in_use"


def test_product_filters_ordering_and_pagination(
    anon: httpx.Client, make_product: Callable[..., dict[str, Any]], staff: httpx.Client
) -> None:
    first = make_product(price="30.00")
    category = first["category"]
    for price in ["10.00", "20.00"]:
        staff.post(
            "/api/v1/products/",
            json={"sku": unique("S"), "name": "n", "price": price, "category": category},
        )
    staff.post(
        "/api/v1/products/",
        json={"sku": unique("S"), "name": "off", "price": "1.00", "category": category,
              "is_active": False},
    )  # fmt: skip
    page = anon.get(
        "/api/v1/products/",
        params={"category": category, "is_active": "true", "ordering": "-price", "page_size": 2},
    ).json()
    assert page["count"] == 3
    assert [p["price"] for p in page["results"]] == ["30.00", "20.00"]
    assert page["previous"] is None
    assert "page=2" in page["next"]
    second = anon.get(page["next"]).json()
    assert [p["price"] for p in second["results"]] == ["10.00"]
    assert second["next"] is None
    by_sku = anon.get("/api/v1/products/", params={"sku": first["sku"]}).json()
    assert [p["id"] for p in by_sku["results"]] == [first["id"]]
    inactive = anon.get("/api/v1/products/", params={"category": category, "is_active": "false"})
    assert [p["name"] for p in inactive.json()["results"]] == ["off"]


def test_page_size_is_capped_and_bad_pages_are_404(anon: httpx.Client) -> None:
    page = anon.get("/api/v1/products/", params={"page_size": 1000})
    assert page.status_code == 200
    assert len(page.json()["results"]) <= 100
    beyond = anon.get("/api/v1/products/", params={"page": 100000})
    assert beyond.status_code == 404
    assert beyond.json() == {"code": "not_found", "detail": "Invalid page."}


def test_bad_filter_value_is_a_validation_error(anon: httpx.Client) -> None:
    response = anon.get("/api/v1/products/", params={"category": "abc"})
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "detail": "Invalid input.",
        "fields": {"category": ["Enter a whole number."]},
    }


def test_anonymous_writes_are_401(anon: httpx.Client) -> None:
    response = anon.post("/api/v1/categories/", json={"name": "x", "slug": "x"})
    assert response.status_code == 401
    assert response.json() == {
        "code": "not_authenticated",
        "detail": "Authentication credentials were not provided.",
    }
    assert response.headers["WWW-Authenticate"] == "Token"
