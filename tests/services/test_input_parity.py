"""Input the monolith refuses, the services refuse the same way (issue #17, found by
`strangler contract check`): bounded integers, strict booleans/integers, NUL and lone
surrogates, 415, HEAD/OPTIONS, Allow, WWW-Authenticate. In-process, SQLite."""

from __future__ import annotations

import pytest

from tests.services.conftest import identity_headers
from tests.services.seed import seed_for_phase, seed_inventory_service

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

NULL = "Null characters are not allowed."


@pytest.fixture
def catalog(service_app):
    client, stack = service_app("catalog", "dual_write")
    seed_for_phase("catalog", "dual_write", stack.monolith_url, stack.service_url)
    return client


@pytest.fixture
def inventory(service_app, catalog):
    client, stack = service_app("inventory", "dual_write")  # the catalog's monolith rows
    seed_inventory_service(stack.service_url)
    return client


def test_ids_past_64_bits_are_404_not_500(catalog, inventory):
    huge = "99999999999999999999"
    assert catalog.get(f"/api/v1/products/{huge}/").status_code == 404
    assert (
        catalog.patch(
            f"/api/v1/categories/{huge}/", json={}, headers=identity_headers()
        ).status_code
        == 404
    )
    assert (
        catalog.delete(f"/api/v1/products/{huge}/", headers=identity_headers()).status_code == 404
    )
    assert inventory.get(f"/api/v1/stock/{huge}/").status_code == 404


def test_id_filters_take_ascii_digits_only_without_decimal(catalog, inventory):
    for raw in ("-1e300", "1e300000", "1.5", "0x1A", "\u0661"):
        response = catalog.get("/api/v1/products/", params={"category": raw})
        assert response.status_code == 400, raw
        assert response.json()["fields"] == {"category": ["Enter a whole number."]}
    for raw in ("99999999999999999999", "-9223372036854775809"):
        response = catalog.get("/api/v1/products/", params={"category": raw})
        assert (response.status_code, response.json()["count"]) == (200, 0)
    stock = inventory.get("/api/v1/stock/", params={"warehouse": "99999999999999999999"})
    assert stock.status_code == 400


def test_keys_in_bodies_are_strict_and_bounded(catalog):
    def category_error(value: object) -> list[str]:
        body = {"sku": "K-1", "name": "n", "price": "1.00", "category": value}
        response = catalog.post("/api/v1/products/", json=body, headers=identity_headers())
        assert response.status_code == 400, response.text
        return list(response.json()["fields"]["category"])

    assert category_error(2**63) == [f'Invalid pk "{2**63}" - object does not exist.']
    assert category_error(1.5) == ["Incorrect type. Expected pk value, received float."]
    assert category_error(True) == ["Incorrect type. Expected pk value, received bool."]


def test_integers_are_strict_true_is_not_one(inventory):
    def quantity(value: object) -> tuple[int, object]:
        response = inventory.patch(
            "/api/v1/stock/1/", json={"quantity": value}, headers=identity_headers()
        )
        return response.status_code, response.json().get("fields", response.json())

    invalid = (400, {"quantity": ["A valid integer is required."]})
    assert quantity(True) == invalid
    assert quantity(1.5) == invalid
    assert quantity("1e3") == invalid
    assert quantity(2**31) == (
        400,
        {"quantity": ["Ensure this value is less than or equal to 2147483647."]},
    )
    assert quantity(7.0)[0] == 200  # DRF's IntegerField takes a float without a fraction
    reserve = {"order_id": 2**63, "lines": [{"product": 1, "quantity": 1}]}
    response = inventory.post("/api/v1/stock/reserve/", json=reserve, headers=identity_headers())
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["order_id"]


def test_nul_and_lone_surrogates_are_refused_like_drf(catalog):
    def errors(raw_json: bytes) -> dict[str, list[str]]:
        headers = {**identity_headers(), "Content-Type": "application/json"}
        response = catalog.post("/api/v1/categories/", content=raw_json, headers=headers)
        assert response.status_code == 400, response.text
        return dict(response.json()["fields"])

    assert errors(b'{"name": "a\\u0000b", "slug": "s1"}') == {"name": [NULL]}
    assert errors(b'{"name": "\\ud800", "slug": "s1"}') == {
        "name": ["Surrogate characters are not allowed: U+D800."]
    }
    slug = 'Enter a valid "slug" consisting of letters, numbers, underscores or hyphens.'
    assert errors(b'{"name": "n", "slug": "a\\u0000b"}') == {"slug": [NULL, slug]}
    assert errors(b'{"name": "n", "slug": true}') == {"slug": [slug]}
    listing = catalog.get("/api/v1/products/", params={"sku": "a\x00b"})
    assert listing.status_code == 400
    assert listing.json()["fields"] == {"sku": [NULL]}


def test_a_body_without_json_content_type_is_415(catalog):
    for content_type in (None, "text/plain"):
        headers = identity_headers() | ({"Content-Type": content_type} if content_type else {})
        response = catalog.post(
            "/api/v1/categories/", content=b'{"name": "n", "slug": "n"}', headers=headers
        )
        assert response.status_code == 415
        assert response.json()["code"] == "unsupported_media_type"


def test_head_options_and_allow_like_drf(catalog, inventory):
    head = catalog.head("/api/v1/products/")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["allow"] == "GET, POST, HEAD, OPTIONS"
    options = catalog.options("/api/v1/products/1/")
    assert options.status_code == 200
    assert options.headers["allow"] == "GET, PUT, PATCH, DELETE, HEAD, OPTIONS"
    assert catalog.get("/api/v1/products/").headers["allow"] == "GET, POST, HEAD, OPTIONS"
    refused = catalog.delete("/api/v1/products/", headers=identity_headers())
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, POST, HEAD, OPTIONS"
    action = inventory.get("/api/v1/stock/reserve/")  # not the detail of stock "reserve"
    assert action.status_code == 405
    assert action.headers["allow"] == "POST, OPTIONS"
    dotted = catalog.get("/api/v1/products/1.0/")  # DRF's routers never match a dot
    assert dotted.status_code == 404
    assert "allow" not in dotted.headers


def test_401_says_how_to_authenticate(catalog):
    response = catalog.post("/api/v1/categories/", json={"name": "n", "slug": "n"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Token"


def test_options_passes_the_read_permissions_like_drf(service_app):
    payments, _ = service_app("payments", "dual_write")  # reads need credentials
    response = payments.options("/api/v1/payments/")
    assert response.status_code == 401
    assert response.headers["allow"] == "GET, HEAD, OPTIONS"
    assert response.headers["www-authenticate"] == "Token"
