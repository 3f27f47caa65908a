"""Live cut-overs with two proxies and two processes per service: no request fails.

The session topology runs every process twice (``replay_replicas`` = 2) and the
workload's clients take the proxies in turn; a reader thread reads through both
proxies the whole time. A request "failed by a transition" is a 5xx or a transport
error while no fault is injected.
"""

from __future__ import annotations

import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from migration_plans.control.cutover import CutOverSettings
from migration_plans.control.exceptions import CutOverAborted, ReplicasNotReady
from migration_plans.control.history import transitions
from migration_plans.control.processes import ManagedProcess, free_port, wait_until
from migration_plans.control.stack import strangler_argv
from migration_plans.core.live_phase import read_state
from migration_plans.core.replicas import Role, list_replicas
from migration_plans.testing import Topology, assert_no_divergence, assert_no_lost_writes
from tests.replay.shop import ShopWorkload

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.pg, pytest.mark.redis]

NO_SHADOW = "phase replay: no production shadow traffic to measure in a test"
NO_EVIDENCE = "phase replay: the gates' evidence is not what this test is about"


class Readers:
    """Threads reading catalog pages through every proxy, counting what failed."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.outcomes: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._read, args=(index,), daemon=True)
            for index in range(len(topology.config.proxy_urls))
        ]

    def _read(self, proxy: int) -> None:
        paths = (
            "/api/v1/products/?page_size=5",
            "/api/v1/products/3/",
            "/api/v1/stock/?page_size=5",
        )
        with self.topology.client(auth=False, proxy=proxy, timeout=10) as client:
            while not self._stop.is_set():
                for path in paths:
                    try:
                        status = client.get(path).status_code
                    except httpx.TransportError as exc:
                        self.failures.append(f"proxy {proxy} GET {path}: {type(exc).__name__}")
                        continue
                    self.outcomes[f"{status // 100}xx"] += 1
                    if status >= 500:
                        self.failures.append(f"proxy {proxy} GET {path}: {status}")
                self._stop.wait(0.02)

    @contextmanager
    def running(self) -> Iterator[Readers]:
        for thread in self._threads:
            thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            for thread in self._threads:
                thread.join(timeout=30)


def failed_writes(workload: ShopWorkload) -> dict[str, int]:
    """Writes refused with a 5xx or never answered."""
    return {
        name: count
        for name, count in workload.refused.items()
        if name.split(": ", 1)[1][:1] == "5" or not name.split(": ", 1)[1][:1].isdigit()
    }


def pids(topology: Topology) -> dict[str, int]:
    return {name: process.pid for name, process in topology.stack.processes.items()}


def test_catalog_round_trip_fails_no_request(phase_replay: Topology) -> None:
    topology = phase_replay
    assert len(topology.config.proxy_urls) == 2
    workload = ShopWorkload(topology, writers=("orders", "catalog", "catalog"), pace=0.05)
    topology.ensure_fresh("catalog")  # (an earlier test's journey: a new service database)
    before = pids(topology)
    with Readers(topology).running() as readers, workload.running():
        workload.wait_for_writes(6, table="products")
        for move in ("advance", "advance", "rollback", "rollback"):
            if move == "advance":
                outcome = topology.advance("catalog", force_reason=NO_SHADOW)
            else:
                outcome = topology.rollback("catalog", reason="replay: live round trip")
            assert outcome.cutover is not None and outcome.cutover.fence_held_ms is not None
            workload.wait_for_writes(6, table="products")
            if topology.phase("catalog") != "shared":
                # (In shared the service copy stays as the rollback left it: nothing to compare.)
                assert_no_divergence(topology, "catalog")
        assert topology.phase("catalog") == "shared"
    assert failed_writes(workload) == {}, workload.stats.samples
    # A create of a new sku has no reason to be refused in any phase (an earlier
    # workload's skus made 400s here once, hiding how few creates went through).
    refused_creates = {k: n for k, n in workload.refused.items() if k.startswith("catalog: 4")}
    assert refused_creates == {}, workload.stats.samples
    assert readers.failures == [], readers.failures[:20]
    assert readers.outcomes["2xx"] > 0
    assert pids(topology) == before, "a transition restarted a process"
    assert_no_lost_writes(workload)
    held = [
        (t.cutover or {}).get("fence_held_ms")
        for t in transitions(topology.environment().engine(), "catalog", limit=4)
    ]
    assert len(held) == 4 and all(ms is not None for ms in held)


def test_a_replica_killed_during_the_fence_aborts_cleanly(phase_replay: Topology) -> None:
    topology = phase_replay
    topology.cutover = CutOverSettings(fence_timeout=2.0, ack_timeout=10.0)
    control = topology.environment().engine()
    routes_before = topology.config.routes_path.read_bytes()
    workload = ShopWorkload(topology, writers=("orders", "catalog"), pace=0.05)
    killed = threading.Event()

    def kill_when_fenced() -> None:
        def fenced() -> bool:
            state = read_state(control, "catalog")
            return state is not None and state.fenced

        wait_until(fenced, timeout=60, interval=0.005, what="the catalog fence")
        topology.stack.processes["catalog-2"].kill()
        killed.set()

    try:
        with workload.running():
            workload.wait_for_writes(4, table="products")
            killer = threading.Thread(target=kill_when_fenced, daemon=True)
            killer.start()
            with pytest.raises(CutOverAborted) as aborted:
                topology.advance("catalog", force_reason=NO_SHADOW)
            killer.join(timeout=10)
            assert killed.is_set()
            assert topology.phase("catalog") == "shared"
            assert topology.config.routes_path.read_bytes() == routes_before
            state = read_state(control, "catalog")
            assert state is not None and state.phase.value == "shared" and not state.fenced
            workload.wait_for_writes(
                4, table="products"
            )  # the held writes went on, to the monolith
        assert "catalog" in str(aborted.value)
        assert_no_lost_writes(workload)
    finally:
        topology.cutover = CutOverSettings()
        topology.recover_all()
    # Restarted, the replica follows the published phase: the advance now goes through.
    topology.advance("catalog", force_reason=NO_SHADOW)
    assert topology.phase("catalog") == "dual_write"
    assert_no_divergence(topology, "catalog")


def test_a_proxy_on_an_old_route_table_blocks_until_left_out(
    phase_replay: Topology, tmp_path: Path
) -> None:
    topology = phase_replay
    topology.cutover = CutOverSettings(ack_timeout=3.0)
    stale_routes = tmp_path / "routes.yaml"
    shutil.copy(topology.config.routes_path, stale_routes)
    with stale_routes.open("a") as extra:
        extra.write("# a copy this proxy was deployed with, never updated\n")
    port = free_port()
    argv = strangler_argv(
        "proxy", "serve", "--routes", str(stale_routes), "--port", str(port), "--no-access-log"
    )
    stale = ManagedProcess.start(
        argv,
        name="stale-proxy",
        env=topology.stack.env("proxy"),
        log_dir=tmp_path,
        health_url=f"http://127.0.0.1:{port}/_strangler/health",
    )
    try:
        stale.wait_healthy(60)
        control = topology.environment().engine()
        wait_until(
            lambda: sum(r.role is Role.PROXY for r in list_replicas(control)) == 3,
            timeout=30,
            what="the third proxy registering",
        )
        with pytest.raises(ReplicasNotReady, match="route table") as refused:
            topology.advance("catalog", force_reason=NO_EVIDENCE, leave_out=False)
        assert f":{stale.pid}:" in str(refused.value)
        assert topology.phase("catalog") == "shared"

        outcome = topology.advance("catalog", force_reason="proxy being decommissioned")
        assert outcome.cutover is not None
        assert [r["why"] for r in outcome.cutover.left_out] == ["not acknowledged"]
        recorded = transitions(control, "catalog", limit=1)[0]
        assert recorded.cutover is not None
        assert recorded.cutover["left_out"][0]["reason"] == "proxy being decommissioned"
        assert topology.phase("catalog") == "dual_write"
    finally:
        topology.cutover = CutOverSettings()
        stale.stop()
