"""Repair keeps id sequences ahead (issue #16, item 3): after a backfill and a repair that
inserts a row, the next id of the side repaired does not collide with the other side's,
and its sequence never moved backwards."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from dualwrite.backfill import Backfill
from dualwrite.capture import set_capture
from migration_plans.core.sequences import ID_HEADROOM, sequence_value
from migration_plans.core.settings import mapping_for
from reconciler.repair import apply_repair, plan_repair
from reconciler.runner import reconcile
from tests.dualwrite.conftest import Pair

NEW_PRODUCT = {
    "monolith": (
        "INSERT INTO catalog_product (sku, name, description, price, is_active, category_id, "
        "created_at, updated_at) VALUES (:sku, 'New', '', 1, :yes, 1, "
        "'2026-01-01 00:00:00+00', '2026-01-01 00:00:00+00')"
    ),
    "service": (
        "INSERT INTO products (sku, title, description, price_cents, status, category_id, "
        "created_at, updated_at) VALUES (:sku, 'New', '', 100, 'active', 1, "
        "'2026-01-01 00:00:00+00', '2026-01-01 00:00:00+00')"
    ),
}
TABLES = {"monolith": "catalog_product", "service": "products"}


def seed_and_backfill(pair: Pair) -> None:
    """Products 1-3 in the monolith, copied by the backfill; capture off afterwards."""
    monolith = pair.relays[0].engines["monolith"]
    set_capture(monolith, "catalog", enabled=False)
    pair.monolith(
        "INSERT INTO catalog_category (id, name, slug, description) VALUES (1, 'A', 'a', '')"
    )
    assert [create(pair, "monolith", f"P-{key}") for key in (1, 2, 3)] == [1, 2, 3]
    assert Backfill(pair.settings()).run(progress=False).finished
    set_capture(monolith, "catalog", enabled=False)  # no event holds the repaired key back


def sequence(pair: Pair, side: str) -> int:
    with pair.relays[0].engines[side].connect() as conn:
        value = sequence_value(conn, TABLES[side], "id")
    assert value is not None
    return value


def create(pair: Pair, side: str, sku: str) -> int:
    """A row created the way the side's own code does: its id from the side's sequence."""
    with pair.relays[0].engines[side].begin() as conn:
        conn.execute(text(NEW_PRODUCT[side]), {"sku": sku, "yes": True})
        return int(conn.execute(text(f"SELECT max(id) FROM {TABLES[side]}")).scalar_one())


def repair(pair: Pair, phase: str, tmp_path: Path) -> None:
    mapping = mapping_for("catalog")
    report = reconcile(mapping, pair.monolith_url, pair.service_url)
    plan = plan_repair(report, mapping, pair.monolith_url, pair.service_url, phase=phase)
    assert [(a.key, a.action) for a in plan.actions] == [(2, "insert")]
    audit = f"sqlite:///{tmp_path / 'control.db'}"
    apply_repair(plan, mapping, pair.monolith_url, pair.service_url, audit_url=audit)


@pytest.mark.pg
def test_pg_repair_keeps_the_service_sequence_past_the_backfill_headroom(
    pair: Pair, tmp_path: Path
) -> None:
    seed_and_backfill(pair)
    before = sequence(pair, "service")
    assert before >= 3 + ID_HEADROOM
    pair.service("DELETE FROM products WHERE id = 2")
    repair(pair, "dual_write", tmp_path)
    assert sequence(pair, "service") >= before
    service_id = create(pair, "service", "S-NEW")
    monolith_id = create(pair, "monolith", "M-NEW")
    assert service_id != monolith_id and service_id > 3 + ID_HEADROOM


def test_sqlite_repair_keeps_the_monolith_sequence_past_the_service_ids(
    sqlite_pair: Pair, tmp_path: Path
) -> None:
    """SQLite: Django's tables are AUTOINCREMENT (a sequence in sqlite_sequence); split with
    reverse sync repairs the monolith from the service."""
    pair = sqlite_pair
    seed_and_backfill(pair)
    before = sequence(pair, "monolith")
    pair.monolith("DELETE FROM catalog_product WHERE id = 2")
    repair(pair, "split", tmp_path)
    after = sequence(pair, "monolith")
    assert after >= before and after >= 3 + ID_HEADROOM
    monolith_id = create(pair, "monolith", "M-NEW")
    service_id = create(pair, "service", "S-NEW")
    assert monolith_id != service_id and monolith_id > 3 + ID_HEADROOM
