"""Rows changing during a run: re-checked after a grace delay; pending outbox events are in flight."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from migration_plans.control.processes import wait_until
from reconciler.report import Verdict
from reconciler.runner import ReconcileOptions, reconcile
from tests.reconciler.reconcile_tables import Pair, catalog_product, product_row, products

MakePair = Callable[[str], Pair]


class DualWriter(threading.Thread):
    """Writes the monolith, then (a moment later, like a relay) the service, until stopped."""

    def __init__(self, pair: Pair, keys: int) -> None:
        super().__init__(daemon=True)
        self.pair, self.keys = pair, keys
        self.stop = threading.Event()
        self.writes = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        table = self.pair.mapping.table("products")
        key, new_key = 1, self.keys + 1
        try:
            while not self.stop.is_set():
                key = (key + 37) % self.keys + 1
                row = product_row(key) | {
                    "price": Decimal(self.writes % 9000) / 100 + 1,
                    "updated_at": datetime.now(UTC),
                }
                self._write(catalog_product, "monolith", row)
                self.stop.wait(0.002)
                self._write(products, "service", table.to_service(row))
                if self.writes % 10 == 0:
                    fresh = product_row(new_key)
                    self._insert(catalog_product, "monolith", fresh)
                    self._insert(products, "service", table.to_service(fresh))
                    new_key += 1
                self.writes += 1
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def _write(self, table: sa.Table, side: str, row: dict[str, object]) -> None:
        self.pair.execute(side, table.update().where(table.c.id == row["id"]).values(**row))

    def _insert(self, table: sa.Table, side: str, row: dict[str, object]) -> None:
        self.pair.execute(side, table.insert().values(**row))


@pytest.mark.parametrize("backend", ["pg", "sqlite"])
def test_continuous_writes_produce_no_false_divergence(make_pair: MakePair, backend: str) -> None:
    pair = make_pair(backend)
    pair.seed(3000)
    writer = DualWriter(pair, 3000)
    writer.start()
    try:
        wait_until(
            lambda: writer.writes >= 20 or writer.error is not None, timeout=30, what="writes"
        )
        before = writer.writes
        options = ReconcileOptions(
            grace_seconds=0.2, max_rechecks=4, levels=(64, 8), segment_size=1024
        )
        report = reconcile(pair.mapping, pair.monolith_url, pair.service_url, options=options)
        during = writer.writes - before
    finally:
        writer.stop.set()
        writer.join(timeout=30)
    assert writer.error is None
    assert during > 0
    table = report.table("products")
    print(f"writes during the run: {during}, resolved on re-check: {table.resolved_on_recheck}")
    assert table.divergences == [], table.divergences
    assert report.verdict is Verdict.CLEAN


@pytest.mark.parametrize("backend", ["sqlite", "pg"])
def test_pending_outbox_event_is_in_flight_not_divergent(
    make_pair: MakePair, fast_options: ReconcileOptions, backend: str
) -> None:
    pair = make_pair(backend)
    pair.seed(20)
    outbox = sa.Table(
        "strangler_outbox",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("aggregate_type", sa.String(64)),
        sa.Column("aggregate_key", sa.String(64)),
        sa.Column("status", sa.String(16)),
    )
    outbox.create(pair.service)
    pair.execute(
        "service",
        outbox.insert(),
        [
            {"aggregate_type": "products", "aggregate_key": "5", "status": "pending"},
            {"aggregate_type": "products", "aggregate_key": "6", "status": "applied"},
        ],
    )
    pair.execute("service", products.update().where(products.c.id.in_([5, 6])).values(title="x"))

    table = reconcile(
        pair.mapping, pair.monolith_url, pair.service_url, options=fast_options
    ).table("products")

    assert {d.key: d.in_flight for d in table.divergences} == {5: True, 6: False}
    assert (table.in_flight, table.differing) == (1, 1)


def test_a_row_fixed_within_the_grace_delay_is_not_reported(
    make_pair: MakePair, fast_options: ReconcileOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = make_pair("sqlite")
    pair.seed(20)
    pair.execute("service", products.update().where(products.c.id == 4).values(price_cents=1))
    pair.execute("service", products.update().where(products.c.id == 9).values(price_cents=2))

    def relay_catches_up(seconds: float) -> None:  # the grace delay: key 4 gets its event
        pair.execute("service", products.update().where(products.c.id == 4).values(price_cents=4))

    monkeypatch.setattr("reconciler.runner.time.sleep", relay_catches_up)
    table = reconcile(
        pair.mapping, pair.monolith_url, pair.service_url, options=fast_options
    ).table("products")
    assert [d.key for d in table.divergences] == [9]
    assert table.resolved_on_recheck == 1
