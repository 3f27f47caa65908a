"""Dashboard sessions and sign-in throttling over real sockets: two proxy replicas
(`strangler proxy serve`, real uvicorn processes) sharing one control database."""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from migration_plans.control.processes import ManagedProcess, free_port
from tests.dashboard.conftest import TOKEN, Place

pytestmark = pytest.mark.e2e

LOGIN = "/_strangler/dashboard/login"
DATA = "/_strangler/dashboard/data"


def start_proxy(processes: Callable[..., ManagedProcess], place: Place, name: str) -> str:
    port = free_port()
    argv = [sys.executable, "-m", "migration_plans.control.cli", "proxy", "serve"]
    argv += ["--routes", str(place.routes), "--port", str(port), "--no-access-log"]
    url = f"http://127.0.0.1:{port}"
    env = {
        "STRANGLER_ADMIN_TOKEN": TOKEN,
        "STRANGLER_LIVE_PHASE": "off",
        "STRANGLER_DASHBOARD_SECURE_COOKIE": "true",
    }
    processes(argv, name=name, health_url=f"{url}/_strangler/health", env=env, timeout=60)
    return url


def test_sessions_hold_across_replicas_end_at_logout_and_guessing_is_throttled(
    place: Place, processes: Callable[..., ManagedProcess]
) -> None:
    first, second = (start_proxy(processes, place, f"proxy-{n}") for n in (1, 2))

    # -- sign in on one replica, read on the other, sign out there: gone on both ----------
    with httpx.Client(base_url=first, timeout=10) as http:
        login = http.post(LOGIN, data={"token": TOKEN})
    cookie = login.headers["set-cookie"]
    session = cookie.split(";", 1)[0].split("=", 1)[1]
    assert login.status_code == 303 and TOKEN not in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "; Secure" in cookie
    jar = {"Cookie": f"strangler_admin={session}"}
    assert httpx.get(f"{second}{DATA}", headers=jar, timeout=10).status_code == 200
    as_bearer = {"Authorization": f"Bearer {session}"}
    assert httpx.get(f"{second}{DATA}", headers=as_bearer, timeout=10).status_code == 401
    assert httpx.post(f"{second}/_strangler/dashboard/logout", headers=jar).status_code == 303
    assert httpx.get(f"{first}{DATA}", headers=jar, timeout=10).status_code == 401
    assert httpx.get(f"{second}{DATA}", headers=jar, timeout=10).status_code == 401

    # -- parallel guesses from one address: 429 with Retry-After; another address signs in
    def guess(n: int) -> httpx.Response:
        return httpx.post(f"{first}{LOGIN}", data={"token": f"guess-{n:016d}"}, timeout=10)

    with ThreadPoolExecutor(max_workers=16) as pool:
        guesses = list(pool.map(guess, range(32)))
    statuses = [answer.status_code for answer in guesses]
    assert set(statuses) == {401, 429} and statuses.count(401) <= 5
    refused = next(answer for answer in guesses if answer.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    local = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=first, transport=local, timeout=10) as colleague:
        signed_in = colleague.post(LOGIN, data={"token": TOKEN})
        theirs = signed_in.headers["set-cookie"].split(";", 1)[0]
        # (the cookie is Secure: an http client keeps it to itself, so it is sent by hand)
        data = colleague.get(DATA, headers={"Cookie": theirs})
    assert signed_in.status_code == 303 and data.status_code == 200
    right_but_throttled = httpx.post(f"{first}{LOGIN}", data={"token": TOKEN}, timeout=10)
    assert right_but_throttled.status_code == 429
