"""Health, request ids, metrics, OpenAPI schema and the error format of unknown URLs."""

from __future__ import annotations

import httpx


def test_healthz(anon: httpx.Client) -> None:
    response = anon.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_request_id_is_honoured_or_generated(anon: httpx.Client) -> None:
    assert (
        anon.get("/healthz", headers={"X-Request-ID": "req-123"}).headers["X-Request-ID"]
        == "req-123"
    )
    generated = anon.get("/api/v1/products/").headers["X-Request-ID"]
    assert len(generated) == 32
    assert (
        anon.get("/healthz", headers={"X-Request-ID": "bad id"}).headers["X-Request-ID"] != "bad id"
    )


def test_metrics(anon: httpx.Client) -> None:
    anon.get("/api/v1/categories/")
    text = anon.get("/metrics").text
    assert "monolith_http_requests_total" in text
    assert 'route="api/v1/categories/"' in text


def test_openapi_schema(anon: httpx.Client) -> None:
    response = anon.get("/api/v1/schema/", params={"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in [
        "/api/v1/products/",
        "/api/v1/stock/reserve/",
        "/api/v1/orders/",
        "/api/v1/auth/whoami/",
    ]:
        assert path in paths


def test_unknown_url_uses_the_error_format(anon: httpx.Client) -> None:
    response = anon.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.content == b'{"code":"not_found","detail":"Not found."}'


def test_method_not_allowed(anon: httpx.Client, staff: httpx.Client) -> None:
    response = staff.put("/api/v1/orders/1/", json={})
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
