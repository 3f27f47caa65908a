"""The shipping context `strangler init` generates, taken shared -> dual_write -> split
and back by the control plane's own transitions, on PostgreSQL with the real processes
(proxy, monolith, the generated service from its package on PYTHONPATH, relay, Celery)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from migration_plans.control.init.generate import InitRequest, run_init
from migration_plans.control.stack import Stack
from migration_plans.core.database import sqlalchemy_url
from migration_plans.core.settings import copy_templates
from migration_plans.testing import ReplayProject, Topology, assert_no_divergence
from migration_plans.testing.broker import PrivateRedis
from tests.replay.shop import log_customer_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.pg, pytest.mark.redis]

CONTEXT = "shipping"
NO_SHADOW = "init phase walk: no production shadow traffic to measure in a test"


def seed_with_shipments(stack: Stack) -> None:
    """The shop with orders, some of them shipped (their shipments are the context's rows)."""
    stack.run_cli(
        "monolith", "seed", "--products", "10", "--customers", "3", "--orders", "12",
        "--seed", "3",
    )  # fmt: skip


@pytest.fixture
def shipping_topology(
    django_shop: None,
    tmp_path: Path,
    pg_database: Callable[[str], str],
    redis_url: str,
) -> Iterator[Topology]:
    """The shop's topology with the generated shipping plan beside the shipped ones (the
    shop's migrations read those) and its service from the generated package."""
    every = tmp_path / "every-plan"
    copy_templates(every)
    result = run_init(
        InitRequest(context=CONTEXT, app_label="shipping", out=tmp_path / "out", plans_dir=every)
    )
    project = ReplayProject(plans=every, project_path=(result.package_dir.parent,))
    var_dir = tmp_path / "var"
    broker = PrivateRedis(var_dir / "log")
    broker.start()
    topology = Topology.postgres(var_dir, pg_database, broker, replicas=1, project=project)
    try:
        yield topology.start(seed=seed_with_shipments, login=log_customer_in)
    finally:
        topology.stop()
        broker.stop()


def _shipments(url: str) -> list[tuple[int, str]]:
    engine = sa.create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, carrier FROM shipping_shipment ORDER BY id"))
            return [(row.id, row.carrier) for row in rows]
    finally:
        engine.dispose()


def _monolith_write(url: str, statement: str) -> None:
    """A write the monolith makes behind the context's back (raw SQL: capture must see it)."""
    engine = sa.create_engine(sqlalchemy_url(url))
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text(statement)).rowcount >= 1
    finally:
        engine.dispose()


def _reads_answer(topology: Topology, known: set[int]) -> None:
    with topology.client() as client:
        page = client.get("/api/v1/shipments/?page_size=100")
        assert page.status_code == 200, page.text
        assert {row["id"] for row in page.json()["results"]} <= known
        assert client.get("/api/v1/shipments/").status_code == 200
    with httpx.Client(base_url=topology.config.proxy_urls[0], trust_env=False) as anonymous:
        assert anonymous.get("/api/v1/shipments/").status_code == 401


def test_generated_shipping_walks_every_phase_and_back(shipping_topology: Topology) -> None:
    topology = shipping_topology
    monolith = topology.config.monolith_db
    shipments = _shipments(monolith)
    assert shipments, "the seed shipped no order"
    known = {key for key, _ in shipments}
    assert topology.phase(CONTEXT) == "shared"
    _reads_answer(topology, known)

    topology.advance(CONTEXT, force_reason=NO_SHADOW)  # migrate, capture, backfill
    assert topology.phase(CONTEXT) == "dual_write"
    report = assert_no_divergence(topology, CONTEXT)
    assert report.tables[0].name == "shipments"
    first = shipments[0][0]
    _monolith_write(
        monolith, f"UPDATE shipping_shipment SET carrier = 'init-walk' WHERE id = {first}"
    )
    _monolith_write(
        monolith,
        "UPDATE shipping_shipment SET status = 'delivered', delivered_at = now() "
        f"WHERE id = {shipments[-1][0]}",
    )
    assert_no_divergence(topology, CONTEXT)  # captured and relayed to the service
    _reads_answer(topology, known)

    topology.advance(CONTEXT, force_reason=NO_SHADOW)
    assert topology.phase(CONTEXT) == "split"
    assert_no_divergence(topology, CONTEXT)
    _reads_answer(topology, known)
    with topology.client() as client:  # the service (now the source of truth) answers
        listed = client.get("/api/v1/shipments/?carrier=init-walk").json()
        assert all(row["carrier"] == "init-walk" for row in listed["results"])

    topology.rollback(CONTEXT, reason="init phase walk: split -> dual_write")
    assert topology.phase(CONTEXT) == "dual_write"
    assert_no_divergence(topology, CONTEXT)

    topology.rollback(CONTEXT, reason="init phase walk: dual_write -> shared")
    assert topology.phase(CONTEXT) == "shared"
    _reads_answer(topology, known)
    assert _shipments(monolith)[0] == (first, "init-walk")
    topology.assert_alive()
