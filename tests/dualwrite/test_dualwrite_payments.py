"""Payments under dual-write on real PostgreSQL (a Django-migrated monolith, an
Alembic-migrated payments database): backfill, both directions through the mapping
(decimal ``amount`` <-> integer ``amount_cents``), and the reconciler on the result."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from dualwrite.backfill import Backfill
from dualwrite.capture import install_capture, set_capture
from dualwrite.config import Direction, RelaySettings
from dualwrite.outbox import OutboxSink
from dualwrite.relay import Relay
from extracted_services.common.changes import ChangeRecorder
from extracted_services.common.database import session_factory
from extracted_services.common.migrations import upgrade
from extracted_services.payments import crud
from migration_plans.control.processes import wait_until
from migration_plans.core.outbox import Origin
from migration_plans.core.settings import mapping_for
from migration_plans.testing.databases import create_database, drop_database, unique_name
from reconciler.diff import DivergenceKind
from reconciler.report import Verdict
from reconciler.runner import ReconcileOptions, reconcile
from tests.dualwrite.conftest import clone_database

pytestmark = pytest.mark.pg

FAST = ReconcileOptions(grace_seconds=0.05, max_rechecks=2, levels=(64, 8), segment_size=1024)


@pytest.fixture(scope="session")
def payments_template(pg_admin_url: str) -> Iterator[str]:
    name = unique_name("strangler_dwt_pay")
    try:
        upgrade("payments", create_database(pg_admin_url, name))
        yield name
    finally:
        drop_database(pg_admin_url, name)


@pytest.fixture
def relay(
    pg_admin_url: str, dw_templates: dict[str, str], payments_template: str
) -> Iterator[Relay]:
    """A relay of the payments context over a fresh monolith and payments database pair,
    capture installed on ``payments_payment`` and switched on; three orders in the monolith."""
    monolith_name, monolith_url = clone_database(pg_admin_url, dw_templates["monolith"], "m")
    service_name, service_url = clone_database(pg_admin_url, payments_template, "pay")
    made = Relay(
        RelaySettings(
            context="payments",
            monolith_url=monolith_url,
            service_url=service_url,
            backoff_base=0.05,
            backoff_max=0.5,
            max_attempts=3,
            stale_after=1.0,
            poll_interval=0.05,
        )
    )
    try:
        install_capture(made.engines["monolith"], [mapping_for("payments")])
        set_capture(made.engines["monolith"], "payments", enabled=True)
        _orders(made)
        yield made
    finally:
        made.close()
        drop_database(pg_admin_url, monolith_name)
        drop_database(pg_admin_url, service_name)


def _orders(relay: Relay) -> None:
    with relay.engines["monolith"].begin() as conn:
        conn.execute(
            text(
                "INSERT INTO auth_user (id, password, is_superuser, username, first_name,"
                " last_name, email, is_staff, is_active, date_joined)"
                " VALUES (1, '!', false, 'alice', '', '', '', false, true, now())"
            )
        )
        conn.execute(
            text(
                "INSERT INTO customers_customer (id, user_id, email, first_name, last_name,"
                " phone, address_line, city, postal_code, country, created_at, updated_at)"
                " VALUES (1, 1, '', '', '', '', '', '', '', '', now(), now())"
            )
        )
        for order_id in (1, 2, 3):
            conn.execute(
                text(
                    "INSERT INTO orders_order (id, customer_id, status, total, currency,"
                    " created_at, updated_at) VALUES (:id, 1, 'paid', 1, 'EUR', now(), now())"
                ),
                {"id": order_id},
            )


def _monolith_payment(relay: Relay, order_id: int, amount: str, reference: str) -> int:
    with relay.engines["monolith"].begin() as conn:
        return int(
            conn.execute(
                text(
                    "INSERT INTO payments_payment (order_id, amount, currency, status,"
                    " provider_reference, card_last4, created_at, updated_at) VALUES"
                    " (:order, :amount, 'EUR', 'succeeded', :ref, '4242', now(), now())"
                    " RETURNING id"
                ),
                {"order": order_id, "amount": Decimal(amount), "ref": reference},
            ).scalar_one()
        )


def _one(relay: Relay, side: str, statement: str, **params: Any) -> Any:
    with relay.engines[side].connect() as conn:
        return conn.execute(text(statement), params).one_or_none()


def _drained(relay: Relay) -> bool:
    """Apply what is pending in both directions; true once a pass applies nothing."""
    return not any([relay.apply_pending(direction) for direction in Direction])


def _reconcile(relay: Relay) -> Any:
    return reconcile(
        mapping_for("payments"),
        relay.settings.monolith_url,
        relay.settings.service_url,
        options=FAST,
    )


def test_a_service_charge_reaches_the_monolith_as_a_decimal_and_back_in_cents(
    relay: Relay,
) -> None:
    first = _monolith_payment(relay, 1, "79.19", "ch_monolith_1")
    Backfill(relay.settings, chunk_size=100).run(progress=False)
    assert _one(relay, "service", "SELECT amount_cents FROM payments WHERE id = :id", id=first) == (
        7919,
    )

    changes = ChangeRecorder(
        "payments", OutboxSink(context="payments", origin=Origin.SERVICE), request_id="saga-2"
    )
    with session_factory(relay.engines["service"])() as session, session.begin():
        charged, created = crud.charge(
            session, crud.ChargeRequest(2, 4250, "EUR", "tok_visa_1881"), changes=changes
        )
    assert created
    wait_until(lambda: _drained(relay), timeout=30, interval=0.05, what="relay drained")
    row = _one(
        relay,
        "monolith",
        "SELECT order_id, amount, status, card_last4 FROM payments_payment WHERE id = :id",
        id=charged.id,
    )
    assert row == (2, Decimal("42.50"), "succeeded", "1881")
    assert isinstance(row[1], Decimal)

    later = _monolith_payment(relay, 3, "0.05", "ch_monolith_3")
    with relay.engines["monolith"].begin() as conn:  # the monolith refunds it (an order cancel)
        conn.execute(
            text("UPDATE payments_payment SET status = 'refunded' WHERE id = :id"), {"id": first}
        )
    wait_until(lambda: _drained(relay), timeout=30, interval=0.05, what="relay drained")
    assert _one(
        relay, "service", "SELECT amount_cents, status FROM payments WHERE id = :id", id=later
    ) == (5, "succeeded")
    assert _one(relay, "service", "SELECT status FROM payments WHERE id = :id", id=first) == (
        "refunded",
    )
    report = _reconcile(relay)
    assert report.verdict is Verdict.CLEAN, report.table("payments").divergences


def test_the_reconciler_compares_payments_clean_after_a_backfill_and_finds_a_difference(
    relay: Relay,
) -> None:
    for order_id, amount in ((1, "79.19"), (2, "0.01"), (3, "1000000.00")):
        _monolith_payment(relay, order_id, amount, f"ch_{order_id}")
    Backfill(relay.settings, chunk_size=2).run(progress=False)
    report = _reconcile(relay)
    assert report.verdict is Verdict.CLEAN
    assert report.table("payments").monolith_rows == 3

    with relay.engines["service"].begin() as conn:  # raw SQL, no outbox: a planted difference
        conn.execute(text("UPDATE payments SET amount_cents = 7918 WHERE order_id = 1"))
        conn.execute(text("DELETE FROM payments WHERE order_id = 3"))
    table = _reconcile(relay).table("payments")
    found = {
        (d.kind, tuple((f.field, f.monolith, f.service) for f in d.fields))
        for d in table.divergences
    }
    assert found == {
        (DivergenceKind.DIFFERING, (("amount_cents", 7919, 7918),)),
        (DivergenceKind.MISSING_IN_SERVICE, ()),
    }
