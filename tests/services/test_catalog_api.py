"""The catalog API in every phase, on SQLite and PostgreSQL (in-process, real databases)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, select, text

from migration_plans.core.database import sqlalchemy_url
from migration_plans.core.outbox import outbox_table
from tests.services.conftest import identity_headers
from tests.services.seed import seed_for_phase

PHASES = ["shared", "dual_write", "split"]
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture(params=PHASES)
def phase(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def outbox_events(service_url: str) -> list[dict[str, object]]:
    engine = create_engine(sqlalchemy_url(service_url))
    with engine.connect() as conn:
        rows = [dict(row) for row in conn.execute(select(outbox_table)).mappings()]
    engine.dispose()
    return rows


def test_reads_render_the_monolith_contract_in_every_phase(service_app, phase):
    client, stack = service_app("catalog", phase)
    seed_for_phase("catalog", phase, stack.monolith_url, stack.service_url)

    product = client.get("/api/v1/products/3/").json()
    assert product == {
        "id": 3,
        "sku": "SKU-003",
        "name": "Product C",
        "description": "#3",
        "price": "31.03",
        "is_active": True,
        "category": 1,
        "created_at": "2026-11-20T09:33:00.123456Z",
        "updated_at": "2026-11-20T12:30:00.123456Z",
    }
    assert client.get("/api/v1/categories/2/").json() == {
        "id": 2,
        "name": "Garden",
        "slug": "garden",
        "description": "",
    }

    page = client.get("/api/v1/products/?page_size=5&page=2&category=1").json()
    assert page["count"] == 13
    assert [row["id"] for row in page["results"]] == [11, 13, 15, 17, 19]
    assert page["next"] == "http://testserver/api/v1/products/?category=1&page=3&page_size=5"
    assert page["previous"] == "http://testserver/api/v1/products/?category=1&page_size=5"

    inactive = client.get("/api/v1/products/?is_active=false&ordering=-price").json()
    prices = [float(row["price"]) for row in inactive["results"]]
    assert inactive["count"] == 6 and prices == sorted(prices, reverse=True)
    assert all(row["is_active"] is False for row in inactive["results"])
    assert client.get("/api/v1/products/?sku=SKU-007").json()["results"][0]["id"] == 7


@SQLITE_ONLY
def test_list_errors_match_the_monolith(service_app):
    client, stack = service_app("catalog", "shared")
    seed_for_phase("catalog", "shared", stack.monolith_url, stack.service_url)
    assert client.get("/api/v1/products/?page=99").json() == {
        "code": "not_found",
        "detail": "Invalid page.",
    }
    response = client.get("/api/v1/products/?category=abc")
    assert response.status_code == 400
    assert response.json()["fields"] == {"category": ["Enter a whole number."]}
    assert client.get("/api/v1/products/999/").status_code == 404
    assert client.get("/api/v1/products/abc/").json()["code"] == "not_found"
    assert client.get("/api/v1/products?page=1").status_code == 404
    first = client.get("/api/v1/products/?page_size=1000&ordering=bogus").json()
    assert len(first["results"]) == 25 and first["results"][0]["id"] == 1


@SQLITE_ONLY
def test_shared_phase_refuses_writes_with_409_naming_the_phase(service_app):
    client, _ = service_app("catalog", "shared")
    response = client.post(
        "/api/v1/categories/", json={"name": "X", "slug": "x"}, headers=identity_headers()
    )
    assert response.status_code == 409
    assert response.json()["code"] == "phase_read_only"
    assert "shared" in response.json()["detail"]


@SQLITE_ONLY
@pytest.mark.parametrize(
    "headers", [{}, identity_headers(key="wrong-key"), identity_headers(ttl=-5)]
)
def test_writes_need_a_valid_identity_header(service_app, phase, headers):
    client, _ = service_app("catalog", phase)
    response = client.post("/api/v1/categories/", json={"name": "X", "slug": "x"}, headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] in {"not_authenticated", "authentication_failed"}


def test_dual_write_records_every_change_in_the_outbox(service_app):
    client, stack = service_app("catalog", "dual_write")
    auth = {**identity_headers(), "X-Request-ID": "req-cat-1"}
    category = client.post(
        "/api/v1/categories/", json={"name": "Tools", "slug": "tools"}, headers=auth
    )
    assert category.status_code == 201
    created = client.post(
        "/api/v1/products/",
        json={"sku": "A-1", "name": "Hammer", "price": "79.19", "category": category.json()["id"]},
        headers=auth,
    )
    assert created.status_code == 201
    body = created.json()
    assert body["price"] == "79.19" and body["is_active"] is True
    patched = client.patch(
        f"/api/v1/products/{body['id']}/", json={"is_active": False}, headers=auth
    )
    assert patched.json()["is_active"] is False
    assert client.delete(f"/api/v1/products/{body['id']}/", headers=auth).status_code == 204

    events = outbox_events(stack.service_url)
    assert [(e["aggregate_type"], e["operation"]) for e in events] == [
        ("categories", "insert"),
        ("products", "insert"),
        ("products", "update"),
        ("products", "delete"),
    ]
    assert {e["request_id"] for e in events} == {"req-cat-1"}
    assert {e["origin"] for e in events} == {"service"}
    image = json.loads(str(events[2]["payload"]))
    assert image["price_cents"] == 7919 and image["status"] == "archived"
    assert image["title"] == "Hammer" and events[3]["payload"] is None


@SQLITE_ONLY
@pytest.mark.parametrize(("reverse_sync", "expected"), [(True, 1), (False, 0)])
def test_split_writes_the_outbox_only_with_reverse_sync(service_app, reverse_sync, expected):
    client, stack = service_app("catalog", "split", reverse_sync=reverse_sync)
    response = client.post(
        "/api/v1/categories/", json={"name": "Tools", "slug": "tools"}, headers=identity_headers()
    )
    assert response.status_code == 201
    assert len(outbox_events(stack.service_url)) == expected


def test_validation_errors_use_the_monolith_format_and_write_nothing(service_app):
    client, stack = service_app("catalog", "dual_write")
    seed_for_phase("catalog", "dual_write", stack.monolith_url, stack.service_url)
    auth = identity_headers()
    response = client.post(
        "/api/v1/products/",
        json={"sku": "SKU-001", "name": "", "price": "1.234", "category": 99, "is_active": "maybe"},
        headers=auth,
    )
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "detail": "Invalid input.",
        "fields": {
            "sku": ["product with this sku already exists."],
            "name": ["This field may not be blank."],
            "price": ["Ensure that there are no more than 2 decimal places."],
            "is_active": ["Must be a valid boolean."],
            "category": ['Invalid pk "99" - object does not exist.'],
        },
    }
    missing = client.post("/api/v1/categories/", json={}, headers=auth).json()
    assert missing["fields"] == {
        "name": ["This field is required."],
        "slug": ["This field is required."],
    }
    not_json = client.post(
        "/api/v1/categories/",
        content=b"{nope",
        headers={**auth, "Content-Type": "application/json"},
    )
    assert not_json.status_code == 400 and not_json.json()["code"] == "parse_error"
    assert outbox_events(stack.service_url) == []


@SQLITE_ONLY
def test_put_replaces_and_404s_for_unknown_rows(service_app):
    client, stack = service_app("catalog", "split")
    seed_for_phase("catalog", "split", stack.monolith_url, stack.service_url)
    auth = identity_headers()
    body = {"sku": "NEW-1", "name": "Renamed", "price": 12, "category": 2}
    replaced = client.put("/api/v1/products/5/", json=body, headers=auth).json()
    assert (replaced["sku"], replaced["name"], replaced["price"], replaced["category"]) == (
        "NEW-1",
        "Renamed",
        "12.00",
        2,
    )
    assert client.put("/api/v1/products/500/", json=body, headers=auth).status_code == 404
    engine = create_engine(sqlalchemy_url(stack.service_url))
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT title, price_cents, status FROM products WHERE id = 5")
        ).one()
    engine.dispose()
    assert tuple(row) == ("Renamed", 1200, "active")
