"""The library's lending context shared -> dual_write -> split -> dual_write -> shared,
under its own workload and the plugin's faults, by the same commands as the shop's.

Every mapping shape of ``plans/lending.yaml`` is on the way: text keys (branches,
books), a composite key (copies), an id map (loans: the service's UUIDs), a monolith
table split in two (members, member_contacts), enum maps, JSON, the empty-string
policy, a user transform (a loan's fine) and a copied column (a loan's book_title).
Writes go through the proxy in every phase, and the monolith's own SQL writes its tables
in shared and dual_write (captured and relayed to the service: both directions).
"""

from __future__ import annotations

import pytest

from migration_plans.control.processes import wait_until
from migration_plans.testing import Topology, assert_no_divergence, assert_no_lost_writes
from tests.library.workload import LibraryWorkload

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.pg, pytest.mark.redis]

CONTEXT = "lending"
NO_SHADOW = "phase replay: no production shadow traffic to measure in a test"
OUTAGES = "phase replay: relay lag includes the outages the test injected on purpose"
TABLES = ("branches", "books", "copies", "members", "member_contacts", "loans")


def reads_answer(topology: Topology) -> bool:
    """Every resource answers its list and one seeded row through the proxy."""
    paths = (
        "/api/v1/branches/CEN/",
        "/api/v1/books/9780000000001/",
        "/api/v1/copies/?book=9780000000001",
        "/api/v1/members/1/",
        "/api/v1/loans/?page_size=5",
    )
    with topology.client(auth=False) as client:
        return all(client.get(path).status_code == 200 for path in paths)


def wait_for_every_table(workload: LibraryWorkload, count: int) -> None:
    """``count`` more acknowledged writes of the busiest tables (loans, books, member
    contacts: the API writers')."""
    for table in ("loans", "books", "member_contacts"):
        workload.wait_for_writes(count, table=table)


def wait_for_refusals(workload: LibraryWorkload, count: int, timeout: float = 60) -> None:
    """``count`` more refused writes (the workload met the fault)."""
    target = sum(workload.refused.values()) + count
    wait_until(lambda: sum(workload.refused.values()) >= target, timeout=timeout, interval=0.1)


def test_library_journey_with_faults(
    phase_replay: Topology, replay_workload: LibraryWorkload
) -> None:
    topology, workload = phase_replay, replay_workload
    assert reads_answer(topology)
    with workload.running():
        wait_for_every_table(workload, 2)

        topology.advance(CONTEXT, force_reason=NO_SHADOW)  # backfill, capture, relay
        assert topology.phase(CONTEXT) == "dual_write"
        assert reads_answer(topology)
        wait_for_every_table(workload, 3)
        with topology.fault("kill_relay", CONTEXT):
            wait_for_every_table(workload, 2)
        wait_for_every_table(workload, 2)
        with topology.fault("kill_service", CONTEXT):
            wait_for_refusals(workload, 2)  # writes to a dead service are refused, not lost
        wait_for_every_table(workload, 2)
        workload.wait_for_monolith_writes(3)  # captured in the monolith, relayed to the service
        assert_no_divergence(topology, CONTEXT)

        # In split the monolith's own code calls the service: its SQL writes stop first.
        with workload.backoffice_stopped():
            topology.advance(CONTEXT, force_reason=OUTAGES)
            assert topology.phase(CONTEXT) == "split"
            wait_for_every_table(workload, 3)
            with topology.fault("kill_relay", CONTEXT):
                wait_for_every_table(workload, 2)
            with topology.fault("service_db_unreachable", CONTEXT):
                wait_for_refusals(workload, 2)  # the source of truth is away: refused, not lost
            wait_for_every_table(workload, 2)
            assert_no_divergence(topology, CONTEXT)

            topology.rollback(CONTEXT, reason="replay: split -> dual_write with reverse sync")
            assert topology.phase(CONTEXT) == "dual_write"
        wait_for_every_table(workload, 3)
        workload.wait_for_monolith_writes(2)
        assert_no_divergence(topology, CONTEXT)
    assert_no_lost_writes(workload)

    topology.rollback(CONTEXT, reason="replay: dual_write -> shared")
    assert topology.phase(CONTEXT) == "shared"
    assert_no_divergence(topology, CONTEXT)
    assert_no_lost_writes(workload)
    assert all(workload.acked(table) for table in TABLES), workload.stats.acked
    assert reads_answer(topology)
    topology.assert_alive()
