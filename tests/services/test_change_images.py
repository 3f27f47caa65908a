"""A service's change event carries the row as it commits, not the columns as the request
loaded them: a change another transaction made to other columns of the row meanwhile
stays in the image, so relaying the event cannot undo it on the monolith's side.

Found in the library journey: a loan returned (status) while a book retitle updated the
same loan's copied title; the retitle's event carried the loan as it had loaded it (still
open), the relay applied it after the return, and the monolith's loan was open again.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from dualwrite.outbox import OutboxSink
from extracted_services.catalog import crud
from extracted_services.catalog.models import Product
from extracted_services.common.changes import ChangeRecorder
from extracted_services.common.database import service_engine, session_factory
from migration_plans.control.processes import ManagedProcess, free_port, wait_until
from migration_plans.core.database import libpq_url
from migration_plans.testing.databases import lock_waiters
from tests.services.conftest import IDENTITY_KEY, REPO_ROOT
from tests.services.seed import seed_catalog_service
from tests.services.test_e2e_hosts_identity import STRANGLER, signed

CHANGES = ChangeRecorder("catalog", OutboxSink(context="catalog"))


def last_image(url: str, product_id: int) -> dict[str, Any]:
    """The newest outbox event's row image of product ``product_id``."""
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT payload FROM strangler_outbox "
            "WHERE aggregate_type = 'products' AND aggregate_key = %s ORDER BY id DESC LIMIT 1",
            [str(product_id)],
        ).fetchone()
    assert row is not None, f"no event of product {product_id}"
    image: dict[str, Any] = json.loads(row[0])
    return image


def stored(url: str, product_id: int) -> tuple[str, int]:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT title, price_cents FROM products WHERE id = %s", [product_id]
        ).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


def assert_row_and_its_event(url: str, title: str, price_cents: int) -> None:
    """Product 1 holds both changes, and so does its newest event's image."""
    assert stored(url, 1) == (title, price_cents)
    image = last_image(url, 1)
    assert (image["title"], image["price_cents"]) == (title, price_cents)


def reprice_while_writing(url: str, price_cents: int, writer: Callable[[], None]) -> None:
    """Change product 1's price in a transaction, run ``writer`` in a thread, commit once
    the writer waits for the row, then wait for it; raises what the writer raised."""
    failures: list[BaseException] = []

    def write() -> None:
        try:
            writer()
        except BaseException as exc:  # raised again below
            failures.append(exc)

    thread = threading.Thread(target=write)
    with psycopg.connect(libpq_url(url)) as holder:
        holder.execute("UPDATE products SET price_cents = %s WHERE id = 1", [price_cents])
        thread.start()
        wait_until(lambda: lock_waiters(url) > 0, timeout=20, what="the write to wait")
        holder.commit()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the write did not finish after the holder committed"
    if failures:
        raise failures[0]


@pytest.mark.parametrize("backend", ["pg"], indirect=True)
def test_an_update_image_keeps_a_change_committed_after_the_row_was_loaded(databases):
    url = databases.service("catalog")
    seed_catalog_service(url)
    engine = service_engine(url)
    try:
        with session_factory(engine)() as session, session.begin():
            product = session.get(Product, 1)
            assert product is not None
            with psycopg.connect(libpq_url(url), autocommit=True) as other:
                other.execute("UPDATE products SET price_cents = 4242 WHERE id = 1")
            crud.update_product(session, product, {"title": "Renamed"}, changes=CHANGES)
    finally:
        engine.dispose()
    assert_row_and_its_event(url, "Renamed", 4242)


@pytest.mark.parametrize("backend", ["pg"], indirect=True)
def test_an_update_that_waited_for_the_row_carries_the_other_transactions_change(databases):
    url = databases.service("catalog")
    seed_catalog_service(url)
    engine = service_engine(url)

    def rename() -> None:
        with session_factory(engine)() as session, session.begin():
            product = session.get(Product, 1)  # the price before the holder's change
            assert product is not None
            crud.update_product(session, product, {"title": "Renamed"}, changes=CHANGES)

    try:
        reprice_while_writing(url, 4343, rename)
    finally:
        engine.dispose()
    assert_row_and_its_event(url, "Renamed", 4343)


@pytest.mark.e2e
@pytest.mark.parametrize("backend", ["pg"], indirect=True)
def test_a_patch_through_a_real_service_that_waited_for_the_row_keeps_the_other_change(
    databases, tmp_path: Path
):
    """Over real sockets: ``strangler service serve catalog`` in dual_write; a PATCH of
    the title waits for another transaction's price change, whose value its event keeps."""
    url = databases.service("catalog")
    seed_catalog_service(url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "CATALOG_DATABASE_URL": url,
        "STRANGLER_MONOLITH_DATABASE_URL": databases.monolith(),
        "CATALOG_PHASE": "dual_write",
        "STRANGLER_LIVE_PHASE": "off",
        "CATALOG_IDENTITY_KEY": IDENTITY_KEY,
    }
    argv = [*STRANGLER, "service", "serve", "catalog", "--port", str(port)]
    process = ManagedProcess.start(
        argv, name="catalog", health_url=f"{base}/healthz", env=env, log_dir=tmp_path, cwd=REPO_ROOT
    )

    def patch() -> None:
        answer = httpx.patch(
            f"{base}/api/v1/products/1/",
            json={"name": "Renamed over HTTP"},
            headers=signed("catalog"),
            timeout=30,
        )
        assert answer.status_code == 200, answer.text

    try:
        reprice_while_writing(url, 4444, patch)
    finally:
        process.stop()
    assert_row_and_its_event(url, "Renamed over HTTP", 4444)
