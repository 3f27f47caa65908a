"""Who gets what: the login page for strangers, data only with the token or the cookie."""

from __future__ import annotations

import asyncio

import pytest

from strangler_proxy.app import StranglerProxy
from tests.dashboard.conftest import AUTH, TOKEN, FixedSources, Place, client, make_proxy

pytestmark = pytest.mark.anyio

PAGE = "/_strangler/dashboard"
DATA = "/_strangler/dashboard/data"


async def test_strangers_get_the_login_page_and_never_data(
    fixed_proxy: tuple[StranglerProxy, FixedSources],
) -> None:
    proxy, sources = fixed_proxy
    async with client(proxy) as http:
        page = await http.get(PAGE)
        slash = await http.get(PAGE + "/")
        data = await http.get(DATA)
        report = await http.get("/_strangler/dashboard/report/abc123")
        css = await http.get("/_strangler/dashboard/static/dashboard.css")
        js = await http.get("/_strangler/dashboard/static/dashboard.js")
    assert page.status_code == slash.status_code == 401
    assert 'name="token"' in page.text and 'type="password"' in page.text
    assert "data-dashboard" not in page.text and "section-" not in page.text
    assert data.status_code == 401 and data.json() == {"error": "unauthorized"}
    assert report.status_code == 401 and 'name="token"' in report.text
    assert sources.calls == 0  # nothing was even collected
    assert css.status_code == js.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert js.headers["content-type"].startswith("text/javascript")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


async def test_a_wrong_token_is_refused_everywhere(
    fixed_proxy: tuple[StranglerProxy, FixedSources],
) -> None:
    proxy, sources = fixed_proxy
    async with client(proxy) as http:
        bearer = await http.get(DATA, headers={"Authorization": "Bearer wrong-token-000000"})
        cookie = await http.get(DATA, headers={"Cookie": "strangler_admin=wrong-token-0000"})
        login = await http.post("/_strangler/dashboard/login", data={"token": "wrong-token-0000"})
        empty = await http.post("/_strangler/dashboard/login", data={})
        after = await http.get(DATA)
    assert bearer.status_code == cookie.status_code == 401
    assert login.status_code == empty.status_code == 401
    assert "set-cookie" not in login.headers
    assert "not the admin token" in login.text
    assert after.status_code == 401
    assert sources.calls == 0


async def test_bearer_token_reads_the_data(
    fixed_proxy: tuple[StranglerProxy, FixedSources],
) -> None:
    proxy, _ = fixed_proxy
    async with client(proxy) as http:
        data = await http.get(DATA, headers=AUTH)
        page = await http.get(PAGE, headers=AUTH)
    assert data.status_code == 200 and data.headers["content-type"] == "application/json"
    assert page.status_code == 200 and "data-dashboard" in page.text


async def test_cookie_login_then_logout(fixed_proxy: tuple[StranglerProxy, FixedSources]) -> None:
    proxy, _ = fixed_proxy
    async with client(proxy) as http:
        login = await http.post(
            "/_strangler/dashboard/login",
            data={"token": TOKEN},
            headers={"Origin": "http://proxy.test"},
        )
        cookie = login.headers["set-cookie"]
        session = http.cookies["strangler_admin"]
        page = await http.get(PAGE)  # the client keeps the cookie
        data = await http.get(DATA)
        logout = await http.post("/_strangler/dashboard/logout")
        gone = await http.get(DATA)
        again = await http.get(PAGE)
        replayed = await http.get(DATA, headers={"Cookie": f"strangler_admin={session}"})
    assert login.status_code == 303 and login.headers["location"] == PAGE
    assert TOKEN not in cookie and len(session) >= 40  # a random session id, not the token
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/_strangler/" in cookie
    assert "Max-Age=86400" in cookie and "Secure" not in cookie
    assert page.status_code == 200 and "data-dashboard" in page.text
    assert data.status_code == 200 and "data" in data.json()
    assert logout.status_code == 303 and "Max-Age=0" in logout.headers["set-cookie"]
    assert gone.status_code == 401 and again.status_code == 401
    assert replayed.status_code == 401  # revoked on the server, not only forgotten by the client


async def test_a_session_is_no_bearer_token_and_the_token_is_no_session(
    fixed_proxy: tuple[StranglerProxy, FixedSources],
) -> None:
    proxy, _ = fixed_proxy
    async with client(proxy) as http:
        await http.post("/_strangler/dashboard/login", data={"token": TOKEN})
        session = http.cookies["strangler_admin"]
        http.cookies.clear()
        as_bearer = await http.get(DATA, headers={"Authorization": f"Bearer {session}"})
        on_admin_api = await http.get(
            "/_strangler/table", headers={"Authorization": f"Bearer {session}"}
        )
        token_cookie = await http.get(DATA, headers={"Cookie": f"strangler_admin={TOKEN}"})
        session_cookie = await http.get(DATA, headers={"Cookie": f"strangler_admin={session}"})
    assert as_bearer.status_code == on_admin_api.status_code == 401
    assert token_cookie.status_code == 401
    assert session_cookie.status_code == 200


async def test_secure_cookie_when_tls_is_terminated_in_front(place: Place) -> None:
    proxy = make_proxy(place.routes, dashboard_secure_cookie=True)
    async with client(proxy) as http:
        login = await http.post("/_strangler/dashboard/login", data={"token": TOKEN})
    assert login.status_code == 303
    assert "; Secure" in login.headers["set-cookie"]


async def test_parallel_wrong_logins_get_429_and_other_addresses_still_sign_in(
    fixed_proxy: tuple[StranglerProxy, FixedSources],
) -> None:
    proxy, _ = fixed_proxy
    async with client(proxy, address="203.0.113.7") as guesser:
        guesses = await asyncio.gather(
            *(
                guesser.post("/_strangler/dashboard/login", data={"token": f"guess-{n:012d}"})
                for n in range(20)
            )
        )
        right_but_late = await guesser.post("/_strangler/dashboard/login", data={"token": TOKEN})
        bearer = await guesser.get(DATA, headers=AUTH)
    async with client(proxy, address="198.51.100.2") as colleague:
        login = await colleague.post("/_strangler/dashboard/login", data={"token": TOKEN})
        data = await colleague.get(DATA)
    statuses = sorted(guess.status_code for guess in guesses)
    assert statuses == [401] * 5 + [429] * 15  # counted as they arrive, not as they fail
    refused = next(guess for guess in guesses if guess.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert right_but_late.status_code == 429 and bearer.status_code == 429  # not even checked
    assert login.status_code == 303 and data.status_code == 200


async def test_cross_site_form_posts_are_refused(
    fixed_proxy: tuple[StranglerProxy, FixedSources],
) -> None:
    proxy, _ = fixed_proxy
    async with client(proxy) as http:
        login = await http.post(
            "/_strangler/dashboard/login",
            data={"token": TOKEN},
            headers={"Origin": "https://evil.example"},
        )
        get_login = await http.get("/_strangler/dashboard/login")
        post_data = await http.post(DATA, headers=AUTH)
    assert login.status_code == 403 and "set-cookie" not in login.headers
    assert get_login.status_code == 303
    assert post_data.status_code == 405


async def test_without_an_admin_token_the_dashboard_is_off(place: Place) -> None:
    proxy = make_proxy(place.routes, token=None)
    async with client(proxy) as http:
        page = await http.get(PAGE)
        login = await http.post("/_strangler/dashboard/login", data={"token": "anything-at-all"})
        data = await http.get(DATA, headers={"Authorization": "Bearer "})
    assert page.status_code == 401 and "STRANGLER_ADMIN_TOKEN" in page.text
    assert 'name="token"' not in page.text
    assert login.status_code == 401 and "set-cookie" not in login.headers
    assert data.status_code == 401


async def test_other_admin_endpoints_are_unchanged(
    fixed_proxy: tuple[StranglerProxy, FixedSources],
) -> None:
    proxy, _ = fixed_proxy
    async with client(proxy) as http:
        health = await http.get("/_strangler/health")
        table = await http.get("/_strangler/table", headers=AUTH)
        nothing = await http.get("/_strangler/dashboardx", headers=AUTH)
    assert health.status_code == 200 and table.status_code == 200
    assert nothing.status_code == 404
