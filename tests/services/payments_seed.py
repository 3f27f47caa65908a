"""Rows for the payments tests: the monolith's users, customers and orders (always in the
monolith: they are not payments' tables) and payments where the phase reads them.

Users: 1 ``staff``, 2 ``alice`` (customer 1: orders 1, 2, 4), 3 ``bob`` (customer 2: order 3).
Payments 1..3 belong to orders 1..3; order 4 has none.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, text

from extracted_services.common.changes import NO_CHANGES
from extracted_services.common.database import service_engine, session_factory
from extracted_services.payments import crud
from extracted_services.payments import db as payments_db
from extracted_services.payments.models import Payment

BASE_TIME = datetime(2026, 11, 20, 9, 30, 0, 123456, tzinfo=UTC)
NOW = "2026-11-20 09:30:00"  # text binds: the same on SQLite and PostgreSQL (UTC sessions)
STAFF, ALICE, BOB = "1", "2", "3"

PAYMENTS: list[dict[str, Any]] = [
    {
        "id": 1,
        "order_id": 1,
        "amount": Decimal("79.19"),
        "currency": "EUR",
        "status": "succeeded",
        "provider_reference": "ch_one",
        "card_last4": "4242",
        "created_at": BASE_TIME,
        "updated_at": BASE_TIME + timedelta(seconds=1),
    },
    {
        "id": 2,
        "order_id": 2,
        "amount": Decimal("5.00"),
        "currency": "EUR",
        "status": "refunded",
        "provider_reference": "ch_two",
        "card_last4": "",
        "created_at": BASE_TIME + timedelta(minutes=1),
        "updated_at": BASE_TIME + timedelta(minutes=2),
    },
    {
        "id": 3,
        "order_id": 3,
        "amount": Decimal("120.50"),
        "currency": "USD",
        "status": "succeeded",
        "provider_reference": "ch_three",
        "card_last4": "1881",
        "created_at": BASE_TIME + timedelta(minutes=3),
        "updated_at": BASE_TIME + timedelta(minutes=3),
    },
]


def seed_people_and_orders(monolith_url: str) -> None:
    """Users, customers and orders 1..4 in the monolith."""
    engine = service_engine(monolith_url)
    with engine.begin() as conn:
        for user_id, name, staff in ((1, "staff", True), (2, "alice", False), (3, "bob", False)):
            conn.execute(
                text(
                    "INSERT INTO auth_user (id, password, is_superuser, username, first_name,"
                    " last_name, email, is_staff, is_active, date_joined) VALUES"
                    " (:id, '!', :staff, :name, '', '', '', :staff, :active, :now)"
                ),
                {"id": user_id, "name": name, "staff": staff, "active": True, "now": NOW},
            )
        for customer_id, user_id in ((1, 2), (2, 3)):
            conn.execute(
                text(
                    "INSERT INTO customers_customer (id, user_id, email, first_name, last_name,"
                    " phone, address_line, city, postal_code, country, created_at, updated_at)"
                    " VALUES (:id, :user, '', '', '', '', '', '', '', '', :now, :now)"
                ),
                {"id": customer_id, "user": user_id, "now": NOW},
            )
        for order_id, customer_id in ((1, 1), (2, 1), (3, 2), (4, 1)):
            conn.execute(
                text(
                    "INSERT INTO orders_order (id, customer_id, status, total, currency,"
                    " created_at, updated_at) VALUES (:id, :customer, 'paid', :total, 'EUR',"
                    " :now, :now)"
                ),
                {
                    "id": order_id,
                    "customer": customer_id,
                    "total": "1.00",
                    "now": NOW,
                },
            )
    engine.dispose()


def seed_monolith_payments(monolith_url: str) -> None:
    engine = service_engine(monolith_url)
    with engine.begin() as conn:
        conn.execute(insert(payments_db.payments_payment), PAYMENTS)
    engine.dispose()


def seed_service_payments(service_url: str) -> None:
    """The same payments through the service's write path, uncaptured (like the backfill)."""
    engine = service_engine(service_url)
    pair = crud.payments_pair()
    with session_factory(engine)() as session, session.begin():
        for row in PAYMENTS:
            crud.create_payment(session, Payment(**pair.to_service(row)), changes=NO_CHANGES)
        if engine.dialect.name == "postgresql":  # explicit ids: move the sequence past them
            session.execute(text("SELECT setval(pg_get_serial_sequence('payments', 'id'), 100)"))
    engine.dispose()


def seed_payments(phase: str, monolith_url: str, service_url: str) -> None:
    """People and orders in the monolith; payments where ``phase`` reads them."""
    seed_people_and_orders(monolith_url)
    if phase == "shared":
        seed_monolith_payments(monolith_url)
    else:
        seed_service_payments(service_url)
