"""Phase replay: replay a context's migration in tests against the real processes.

- :class:`Topology` starts the whole stack (monolith, services, proxy, relays, Celery)
  and moves a context through its phases and rollbacks; :meth:`Topology.fault` injects
  one of the named :data:`FAULTS` for a ``with`` block and recovers.
- A :class:`Workload` (the project's; :class:`ThreadedWorkload` is a base for one)
  drives traffic through the proxy and keeps every acknowledged write
  (:class:`AckedWrite`).
- :func:`assert_no_divergence` (relay drained, reconciler clean) and
  :func:`assert_no_lost_writes` (each acknowledged write on the phase's source of truth,
  and on the other side while sync runs).
- The pytest fixtures (``phase_replay``, ``replay_workload``, ...) are in
  :mod:`migration_plans.testing.plugin`, registered through ``pytest11``;
  :mod:`migration_plans.testing.databases` makes throwaway PostgreSQL databases.

Example (the project's conftest overrides ``replay_workload_factory``, and
``replay_seed`` / ``replay_login`` if its monolith needs data or a logged-in client)::

    import pytest
    from migration_plans.testing import Topology, assert_no_divergence, assert_no_lost_writes

    from tests.replay.shop import ShopWorkload  # the project's ThreadedWorkload

    @pytest.mark.e2e
    def test_a_relay_crash_loses_nothing(
        phase_replay: Topology, replay_workload: ShopWorkload
    ) -> None:
        with replay_workload.running():
            phase_replay.advance("catalog", force_reason="no shadow traffic in tests")
            with phase_replay.fault("kill_relay", "catalog"):
                replay_workload.wait_for_writes(5)
            replay_workload.wait_for_writes(5)
        assert_no_divergence(phase_replay, "catalog")
        assert_no_lost_writes(replay_workload)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from migration_plans.core.exports import lazy_exports

if TYPE_CHECKING:
    from migration_plans.testing.assertions import assert_no_divergence, assert_no_lost_writes
    from migration_plans.testing.broker import PrivateRedis
    from migration_plans.testing.faults import FAULTS, Faults
    from migration_plans.testing.topology import (
        DatabaseFactory,
        Login,
        ReplayProject,
        Seed,
        Topology,
    )
    from migration_plans.testing.workload import (
        AckedWrite,
        Step,
        ThreadedWorkload,
        Workload,
        WriteCheck,
    )

__all__ = [
    "FAULTS",
    "AckedWrite",
    "DatabaseFactory",
    "Faults",
    "Login",
    "PrivateRedis",
    "ReplayProject",
    "Seed",
    "Step",
    "ThreadedWorkload",
    "Topology",
    "Workload",
    "WriteCheck",
    "assert_no_divergence",
    "assert_no_lost_writes",
]

if not TYPE_CHECKING:
    # The pytest11 plugin imports this package in every pytest run of a project that
    # installs strangler; the stack, dualwrite and the reconciler load only when used.
    __getattr__ = lazy_exports(
        __name__,
        {
            "assertions": ["assert_no_divergence", "assert_no_lost_writes"],
            "broker": ["PrivateRedis"],
            "faults": ["FAULTS", "Faults"],
            "topology": ["DatabaseFactory", "Login", "ReplayProject", "Seed", "Topology"],
            "workload": ["AckedWrite", "Step", "ThreadedWorkload", "Workload", "WriteCheck"],
        },
    )
