"""Contract: the payments reads of a real monolith process and a real payments service
process (``strangler service serve payments``, shared phase) compared field by field, as
staff, as two customers and anonymously."""

from __future__ import annotations

import secrets

import httpx
import pytest
from sqlalchemy import text

from extracted_services.common.database import service_engine
from migration_plans.control.processes import free_port
from tests.services.conftest import IDENTITY_KEY, Databases, identity_headers
from tests.services.contract import Comparison, Step
from tests.services.payments_seed import ALICE, BOB, STAFF, seed_payments
from tests.services.test_contract import STRANGLER, Server, exchange, start_monolith, up

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PAYMENTS_READS = [
    Step("payments", "GET", "/api/v1/payments/", auth=True),
    Step("payments by amount desc", "GET", "/api/v1/payments/?ordering=-amount", auth=True),
    Step("payments page 2", "GET", "/api/v1/payments/?page=2&page_size=1", auth=True),
    Step("payments refunded", "GET", "/api/v1/payments/?status=refunded", auth=True),
    Step("payments of order 3", "GET", "/api/v1/payments/?order=3", auth=True),
    Step("payments of an unknown order", "GET", "/api/v1/payments/?order=99", auth=True),
    Step("payments of an unknown status", "GET", "/api/v1/payments/?status=paid", auth=True),
    Step("payment 1", "GET", "/api/v1/payments/1/", auth=True),
    Step("payment 3", "GET", "/api/v1/payments/3/", auth=True),
    Step("payment missing", "GET", "/api/v1/payments/99/", auth=True),
    Step("payment not a number", "GET", "/api/v1/payments/abc/", auth=True),
    Step("payments anonymous", "GET", "/api/v1/payments/"),
    Step("payment anonymous", "GET", "/api/v1/payments/1/"),
]


def add_tokens(monolith_url: str) -> dict[str, str]:
    """An API token for each seeded user, by user id."""
    tokens = {user: secrets.token_hex(20) for user in (STAFF, ALICE, BOB)}
    engine = service_engine(monolith_url)
    with engine.begin() as conn:
        for user, key in tokens.items():
            conn.execute(
                text(
                    "INSERT INTO authtoken_token (key, created, user_id)"
                    " VALUES (:key, '2026-11-20 09:30:00', :user)"
                ),
                {"key": key, "user": int(user)},
            )
    engine.dispose()
    return tokens


def start_payments(processes, monolith_url: str) -> Server:  # type: ignore[no-untyped-def]
    """The documented way: ``strangler service serve payments --port P``."""
    port = free_port()
    env = {
        "PAYMENTS_PHASE": "shared",
        "PAYMENTS_DATABASE_URL": "",
        "PAYMENTS_MONOLITH_DATABASE_URL": monolith_url,
        "PAYMENTS_IDENTITY_KEY": IDENTITY_KEY,
    }
    argv = [STRANGLER, "service", "serve", "payments", "--port", str(port)]
    return Server(processes(argv, name="payments", env=env), f"http://127.0.0.1:{port}")


@pytest.mark.parametrize("backend", ["pg", "sqlite"], indirect=True)
def test_shared_payments_reads_match_the_monolith_for_every_caller(
    databases: Databases, processes
) -> None:
    monolith_db = databases.monolith()
    seed_payments("shared", monolith_db, "")
    tokens = add_tokens(monolith_db)
    monolith, payments = up(
        start_monolith(processes, monolith_db), start_payments(processes, monolith_db)
    )
    comparison = Comparison("shared")
    with (
        httpx.Client(base_url=monolith, timeout=30) as monolith_client,
        httpx.Client(base_url=payments, timeout=30) as service_client,
    ):
        for user, token in tokens.items():
            for step in PAYMENTS_READS:
                named = Step(
                    f"{step.name} as user {user}", step.method, step.path, step.body, step.auth
                )
                comparison.compare(
                    exchange(monolith_client, named, {"Authorization": f"Token {token}"}),
                    exchange(service_client, named, identity_headers(user)),
                )
    assert comparison.mismatches == [], "\n".join(comparison.mismatches)
