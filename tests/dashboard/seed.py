"""What the dashboard tests plant: catalog databases, shadow outcomes, outbox events, plans.

The catalog tables follow ``migration_plans/templates/catalog.yaml`` (monolith ``catalog_*``,
service ``categories``/``products``); the relay's own tables come from ``dualwrite``.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from dualwrite.schema import dead_letter_table, relay_metadata
from migration_plans.core.outbox import outbox_metadata, outbox_table
from migration_plans.core.settings import copy_templates
from strangler_proxy.shadow import CompareRules, compare_responses
from strangler_proxy.shadow.exchange import CapturedRequest, CapturedResponse
from strangler_proxy.shadow.store import Outcome, OutcomeKind, ShadowResults
from tests.reconciler.reconcile_tables import (
    catalog_category,
    catalog_product,
    categories,
    monolith_metadata,
    products,
    service_metadata,
)

STAMP = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Databases:
    monolith: str
    catalog: str
    inventory: str
    control: str

    def environment(self) -> dict[str, str]:
        return {
            "STRANGLER_MONOLITH_DATABASE_URL": self.monolith,
            "DATABASE_URL": self.monolith,
            "CATALOG_DATABASE_URL": self.catalog,
            "INVENTORY_DATABASE_URL": self.inventory,
            "STRANGLER_CONTROL_DB_URL": self.control,
        }


def make_databases(folder: Path, *, products_count: int = 3) -> Databases:
    """SQLite monolith, catalog and inventory databases with equal catalog rows."""
    folder.mkdir(parents=True, exist_ok=True)
    monolith_url, catalog_url, inventory_url, control_url = (
        f"sqlite:///{folder / name}.sqlite3"
        for name in ("monolith", "catalog", "inventory", "control")
    )
    urls = Databases(monolith_url, catalog_url, inventory_url, control_url)
    monolith, service = sa.create_engine(urls.monolith), sa.create_engine(urls.catalog)
    for engine, metadata in ((monolith, monolith_metadata), (service, service_metadata)):
        metadata.create_all(engine)
        outbox_metadata.create_all(engine)
        relay_metadata.create_all(engine)
    with monolith.begin() as m, service.begin() as s:
        m.execute(catalog_category.insert(), [{"id": 1, "name": "Cups", "slug": "cups"}])
        s.execute(categories.insert(), [{"id": 1, "name": "Cups", "slug": "cups"}])
        for i in range(1, products_count + 1):
            m.execute(catalog_product.insert(), [monolith_product(i)])
            s.execute(
                products.insert(),
                [
                    {
                        "id": i,
                        "sku": f"SKU-{i}",
                        "title": f"Cup {i}",
                        "description": None,
                        "price_cents": 1000 + i,
                        "status": "active",
                        "category_id": 1,
                        "created_at": STAMP,
                        "updated_at": STAMP,
                    }
                ],
            )
    monolith.dispose()
    service.dispose()
    return urls


def monolith_product(i: int) -> dict[str, object]:
    return {
        "id": i,
        "sku": f"SKU-{i}",
        "name": f"Cup {i}",
        "description": None,
        "price": Decimal(1000 + i) / 100,
        "is_active": True,
        "category_id": 1,
        "created_at": STAMP,
        "updated_at": STAMP,
    }


def add_monolith_only_product(url: str, i: int) -> None:
    """A row the service lacks: the next reconcile finds one divergent row."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(catalog_product.insert(), [monolith_product(i)])
    engine.dispose()


def relayed_events(url: str, context: str, lags_ms: list[float], *, dead: int = 0) -> None:
    """Applied outbox events with the given relay lags, and ``dead`` dead letters."""
    now = datetime.now(UTC)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for n, lag in enumerate(lags_ms):
            created = now - timedelta(seconds=len(lags_ms) - n)
            conn.execute(
                outbox_table.insert().values(
                    event_id=str(uuid.uuid4()),
                    context=context,
                    aggregate_type="products",
                    aggregate_key=str(n),
                    operation="update",
                    origin="service",
                    status="applied",
                    created_at=created,
                    applied_at=created + timedelta(milliseconds=lag),
                )
            )
        for n in range(dead):
            conn.execute(
                dead_letter_table.insert().values(
                    outbox_id=10_000 + n,
                    event_id=str(uuid.uuid4()),
                    context=context,
                    aggregate_type="products",
                    aggregate_key=str(n),
                    operation="update",
                    origin="monolith",
                    attempts=8,
                    last_error="IntegrityError: products.sku not unique",
                    created_at=now,
                    dead_at=now,
                )
            )
    engine.dispose()


def copy_plans(folder: Path, *, phases: dict[str, str] | None = None) -> Path:
    """The repository's plans in ``folder``, with phases changed as asked."""
    copy_templates(folder, overwrite=True)
    for context, phase in (phases or {}).items():
        path = folder / f"{context}.yaml"
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("\nphase: shared\n", f"\nphase: {phase}\n"), encoding="utf-8")
    return folder


def _json(status: int, body: object) -> CapturedResponse:
    return CapturedResponse(
        status, (("content-type", "application/json"),), json.dumps(body).encode()
    )


def outcome(
    route: str,
    title: str,
    candidate_title: str,
    *,
    at: float | None = None,
    context: str = "catalog",
) -> Outcome:
    """One mirrored ``GET /api/v1/products/7/``; a mismatch when the titles differ."""
    request = CapturedRequest("GET", "/api/v1/products/7/", (("accept", "application/json"),), b"")
    base = {"id": 7, "sku": "SKU-7", "price": "10.07", "category": 1, "is_active": True}
    primary = _json(200, {**base, "name": title})
    candidate = _json(200, {**base, "name": candidate_title})
    result = compare_responses(primary, candidate, CompareRules())
    kind: OutcomeKind = "matched" if result.matched else "mismatched"
    return Outcome(
        route,
        kind,
        context,
        request,
        primary,
        candidate,
        result,
        at=time.time() if at is None else at,
    )


def shadow_history(store: ShadowResults, route: str, *, minutes: int = 30) -> None:
    """A half hour of mirrored traffic with a few mismatches, one batch per minute."""
    now = time.time()
    batch: list[Outcome] = []
    for minute in range(minutes, 0, -1):
        at = now - minute * 60
        misses = 1 if minute % 7 == 0 else 0
        batch.extend(outcome(route, "Cup", "Cup", at=at) for _ in range(40 - misses))
        batch.extend(outcome(route, "Cup", "Cup ", at=at) for _ in range(misses))
    store.record_many(batch)
