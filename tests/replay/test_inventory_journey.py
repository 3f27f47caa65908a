"""The inventory context shared -> dual_write -> split and back, orders running throughout."""

from __future__ import annotations

import pytest

from migration_plans.control.exceptions import RollbackLosesData
from migration_plans.testing import Topology, assert_no_divergence, assert_no_lost_writes
from tests.replay.shop import ShopWorkload

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.pg, pytest.mark.redis]

NO_SHADOW = "phase replay: no production shadow traffic to measure in a test"
OUTAGES = "phase replay: relay lag includes the relay crash the test injected on purpose"


def test_inventory_journey_with_rollbacks(
    phase_replay: Topology, replay_workload: ShopWorkload
) -> None:
    topology, workload = phase_replay, replay_workload
    with workload.running():
        workload.wait_for_writes(4, table="orders")

        topology.advance("inventory", force_reason=NO_SHADOW)
        assert topology.phase("inventory") == "dual_write"
        workload.wait_for_writes(4, table="orders")
        workload.wait_for_writes(3, table="stock_levels")
        with topology.fault("kill_relay", "inventory"):
            workload.wait_for_writes(4, table="orders")  # captured, waiting for the relay
        workload.wait_for_writes(3, table="stock_levels")
        assert_no_divergence(topology, "inventory")

        # Orders keep coming over the cut-over: the monolith's port holds its local
        # reservations while the context is fenced and acknowledges the new phase only
        # when none is in flight; from split on, orders are sagas calling the service.
        topology.advance("inventory", force_reason=OUTAGES)
        assert topology.phase("inventory") == "split"
        workload.wait_for_writes(4, table="orders")  # reserved through the service now
        workload.wait_for_writes(3, table="stock_levels")
        assert_no_divergence(topology, "inventory")

        # Changes made in split while reverse sync is off never reach the monolith (that
        # is why this rollback is refused): the workload pauses for that window only.
        with workload.paused():
            topology.set_reverse_sync("inventory", False)
            with pytest.raises(RollbackLosesData):
                topology.rollback("inventory", reason="replay: must be refused")
            assert topology.phase("inventory") == "split"
            topology.set_reverse_sync("inventory", True)
        topology.rollback("inventory", reason="replay: split -> dual_write with reverse sync")
        assert topology.phase("inventory") == "dual_write"
        workload.wait_for_writes(4, table="orders")
        workload.wait_for_writes(3, table="stock_levels")
        assert_no_divergence(topology, "inventory")
    assert_no_lost_writes(workload)

    topology.rollback("inventory", reason="replay: dual_write -> shared")
    assert topology.phase("inventory") == "shared"
    assert_no_divergence(topology, "inventory")
    assert_no_lost_writes(workload)
    topology.assert_alive()
