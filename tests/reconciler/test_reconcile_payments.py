"""The payments mapping (decimal ``amount`` <-> integer ``amount_cents``, string ``status``)
compares clean when both sides agree and finds planted differences, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from extracted_services.payments.db import payments_payment
from extracted_services.payments.models import Payment
from migration_plans.core.settings import mapping_for
from reconciler.diff import DivergenceKind
from reconciler.report import Verdict
from reconciler.runner import ReconcileOptions, reconcile
from tests.reconciler.reconcile_tables import engine, insert

START = datetime(2026, 12, 1, 8, 0, 0, 250000, tzinfo=UTC)
payments = Payment.__table__


def payment_row(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "order_id": i,
        "amount": Decimal(f"{i * 13 % 997}.{i % 100:02d}"),
        "currency": "EUR" if i % 3 else "USD",
        "status": "refunded" if i % 7 == 0 else "succeeded",
        "provider_reference": f"ch_{i:08d}",
        "card_last4": f"{i % 10000:04d}" if i % 2 else "",
        "created_at": START + timedelta(seconds=i),
        "updated_at": START + timedelta(seconds=i, microseconds=i),
    }


@pytest.fixture
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], tuple[str, str]]:
    def make(backend: str) -> tuple[str, str]:
        if backend == "sqlite":
            found = (f"sqlite:///{tmp_path}/monolith.db", f"sqlite:///{tmp_path}/service.db")
        else:
            found = request.getfixturevalue("pg_urls")
        payments_payment.create(engine(found[0]))
        payments.create(engine(found[1]))  # type: ignore[attr-defined]
        return found

    return make


@pytest.mark.parametrize("backend", ["sqlite", "pg"])
def test_payments_compare_clean_then_find_planted_differences(
    urls: Callable[[str], tuple[str, str]], fast_options: ReconcileOptions, backend: str
) -> None:
    monolith_url, service_url = urls(backend)
    mapping = mapping_for("payments")
    pair = mapping.table("payments")
    rows = [payment_row(i) for i in range(1, 301)]
    insert(engine(monolith_url), payments_payment, rows)
    insert(engine(service_url), payments, [pair.to_service(row) for row in rows])  # type: ignore[arg-type]

    def run() -> Any:
        return reconcile(mapping, monolith_url, service_url, options=fast_options)

    assert run().verdict is Verdict.CLEAN

    with engine(service_url).begin() as conn:
        conn.execute(payments.update().where(payments.c.id == 10).values(amount_cents=1))  # type: ignore[attr-defined]
        conn.execute(payments.delete().where(payments.c.id == 20))  # type: ignore[attr-defined]
    with engine(monolith_url).begin() as conn:
        conn.execute(
            payments_payment.update().where(payments_payment.c.id == 30).values(status="refunded")
        )
    report = run()
    found = {
        d.key: (d.kind, [(f.field, f.monolith, f.service) for f in d.fields])
        for d in report.table("payments").divergences
    }
    assert found == {
        10: (
            DivergenceKind.DIFFERING,
            [("amount_cents", pair.to_service(rows[9])["amount_cents"], 1)],
        ),
        20: (DivergenceKind.MISSING_IN_SERVICE, []),
        30: (DivergenceKind.DIFFERING, [("status", "refunded", "succeeded")]),
    }
    assert report.verdict is Verdict.DIVERGENT
