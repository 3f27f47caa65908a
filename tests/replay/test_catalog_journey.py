"""The catalog context shared -> dual_write -> split and back, under load and faults."""

from __future__ import annotations

import pytest

from migration_plans.testing import Topology, assert_no_divergence, assert_no_lost_writes
from tests.replay.shop import ShopWorkload

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.pg, pytest.mark.redis]

NO_SHADOW = "phase replay: no production shadow traffic to measure in a test"
OUTAGES = "phase replay: relay lag includes the outages the test injected on purpose"


def reads_answer(topology: Topology) -> bool:
    with topology.client(auth=False) as client:
        return all(
            client.get(path).status_code == 200
            for path in ("/api/v1/products/?page_size=5", "/api/v1/products/3/")
        )


def test_catalog_journey_with_faults(phase_replay: Topology, replay_workload: ShopWorkload) -> None:
    topology, workload = phase_replay, replay_workload
    with workload.running():
        workload.wait_for_writes(4, table="products")
        with topology.fault("drop_shadow_upstream", "catalog"):
            assert reads_answer(topology)  # the monolith answers, the shadow is gone
            workload.wait_for_writes(2, table="products")

        topology.advance("catalog", force_reason=NO_SHADOW)
        assert topology.phase("catalog") == "dual_write"
        workload.wait_for_writes(4, table="products")
        with topology.fault("kill_service", "catalog"):
            workload.wait_for_writes(3, table="orders")
        workload.wait_for_writes(4, table="products")
        with topology.fault("service_db_unreachable", "catalog"):
            workload.wait_for_writes(3, table="orders")
        workload.wait_for_writes(4, table="products")
        with topology.fault("stop_broker"):
            workload.wait_for_writes(4, table="products")
        assert_no_divergence(topology, "catalog")

        topology.advance("catalog", force_reason=OUTAGES)
        assert topology.phase("catalog") == "split"
        workload.wait_for_writes(4, table="products")
        assert_no_divergence(topology, "catalog")

        topology.rollback("catalog", reason="replay: split -> dual_write with reverse sync")
        assert topology.phase("catalog") == "dual_write"
        workload.wait_for_writes(4, table="products")
        assert_no_divergence(topology, "catalog")
    assert_no_lost_writes(workload)

    topology.rollback("catalog", reason="replay: dual_write -> shared")
    assert topology.phase("catalog") == "shared"
    assert_no_divergence(topology, "catalog")
    assert_no_lost_writes(workload)
    assert workload.acked("products") and workload.acked("orders")
    topology.assert_alive()
