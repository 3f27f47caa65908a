"""Tokens, whoami and the 401/403 error bodies."""

from __future__ import annotations

import httpx

from .conftest import STAFF_PASSWORD, STAFF_USERNAME, Monolith


def test_token_and_whoami(anon: httpx.Client, monolith: Monolith) -> None:
    response = anon.post(
        "/api/v1/auth/token/", json={"username": STAFF_USERNAME, "password": STAFF_PASSWORD}
    )
    assert response.status_code == 200
    assert response.json() == {"token": monolith.staff_token}
    whoami = monolith.client(monolith.staff_token).get("/api/v1/auth/whoami/")
    assert whoami.status_code == 200
    assert whoami.json() == {"id": whoami.json()["id"], "username": STAFF_USERNAME}


def test_wrong_password_is_a_validation_error(anon: httpx.Client) -> None:
    response = anon.post(
        "/api/v1/auth/token/", json={"username": STAFF_USERNAME, "password": "nope"}
    )
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "detail": "Invalid input.",
        "fields": {"non_field_errors": ["Unable to log in with provided credentials."]},
    }


def test_whoami_needs_a_valid_token(anon: httpx.Client, monolith: Monolith) -> None:
    assert anon.get("/api/v1/auth/whoami/").json()["code"] == "not_authenticated"
    bad = monolith.client("0" * 40).get("/api/v1/auth/whoami/")
    assert bad.status_code == 401
    assert bad.json() == {"code": "authentication_failed", "detail": "Invalid token."}
