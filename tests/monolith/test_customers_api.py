"""Sign-up, own profile, and the staff-only customer list."""

from __future__ import annotations

import httpx

from .conftest import Monolith, sign_up, unique


def test_sign_up_and_profile(anon: httpx.Client, monolith: Monolith) -> None:
    username = unique("ada")
    token = sign_up(anon, username)
    me = monolith.client(token).get("/api/v1/customers/me/")
    assert me.status_code == 200
    assert me.json()["username"] == username
    assert me.json()["email"] == f"{username}@x.io"
    patched = monolith.client(token).patch("/api/v1/customers/me/", json={"city": "Oslo"})
    assert patched.json()["city"] == "Oslo"
    own = monolith.client(token).get(f"/api/v1/customers/{me.json()['id']}/")
    assert own.json()["city"] == "Oslo"


def test_sign_up_validation(anon: httpx.Client) -> None:
    response = anon.post("/api/v1/customers/", json={"username": "", "password": "short"})
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"username", "password"}


def test_customer_list_is_staff_only(
    anon: httpx.Client, customer: httpx.Client, staff: httpx.Client
) -> None:
    assert anon.get("/api/v1/customers/").status_code == 401
    forbidden = customer.get("/api/v1/customers/")
    assert forbidden.status_code == 403
    assert forbidden.json() == {
        "code": "permission_denied",
        "detail": "You do not have permission to perform this action.",
    }
    listing = staff.get("/api/v1/customers/")
    assert listing.status_code == 200
    assert listing.json()["count"] >= 1


def test_customers_cannot_see_each_other(anon: httpx.Client, monolith: Monolith) -> None:
    other = monolith.client(sign_up(anon)).get("/api/v1/customers/me/").json()
    response = monolith.client(monolith.customer_token).get(f"/api/v1/customers/{other['id']}/")
    assert response.status_code == 404
