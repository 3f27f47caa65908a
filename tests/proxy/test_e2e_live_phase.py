"""End to end over real sockets: a proxy process holds a write behind the fence, then moves it.

The control plane's cut-over, played by hand: fence the context, see the proxy
acknowledge while it holds a write, rewrite the route file and publish the new phase
(still fenced), see the new table acknowledged, lift the fence: the write lands on the
new upstream, late but never failed.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from migration_plans.control.processes import wait_until
from migration_plans.core.database import engine as make_engine
from migration_plans.core.live_phase import publish
from migration_plans.core.phase import Phase
from migration_plans.core.replicas import Replica, list_replicas
from tests.proxy.test_e2e import ADMIN, routes, write_atomically

if TYPE_CHECKING:
    from tests.proxy.conftest import Servers

pytestmark = pytest.mark.e2e


def seen(upstream: str) -> list[str]:
    return list(httpx.get(f"{upstream}/_seen", timeout=5).json()["seen"])


def live(proxy: str) -> Any:
    return httpx.get(f"{proxy}/_strangler/live", headers=ADMIN, timeout=5).json()


class Write(threading.Thread):
    """One POST through the proxy on a thread, and its answer."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.response: httpx.Response | None = None

    def run(self) -> None:
        self.response = httpx.post(self.url, json={"name": "lamp"}, timeout=30)


def test_a_held_write_is_released_to_the_new_upstream(servers: Servers, tmp_path: Path) -> None:
    _, monolith = servers.echo("monolith")
    _, catalog = servers.echo("catalog")
    path = tmp_path / "routes.yaml"
    path.write_text(routes(monolith, catalog))
    _, proxy = servers.proxy(path, reload_interval=3600)  # only the published epochs reload
    engine = make_engine(servers.control_db)

    def replica() -> Replica | None:
        rows = list_replicas(engine)
        return rows[0] if len(rows) == 1 else None

    def acknowledged(epoch: int, route_hash: str | None = None) -> bool:
        row = replica()
        return (
            row is not None
            and row.epoch("catalog") == epoch
            and route_hash in (None, row.ack.route_hash)
        )

    wait_until(lambda: replica() is not None, timeout=10, what="the proxy registered")
    fence = publish(engine, "catalog", Phase.SHARED, fence_seconds=30)
    wait_until(lambda: acknowledged(fence.epoch), timeout=10, what="the fence acknowledged")
    write = Write(f"{proxy}/api/v1/products/")
    write.start()
    wait_until(
        lambda: live(proxy)["contexts"]["catalog"]["held"] == 1, timeout=10, what="write held"
    )
    assert acknowledged(fence.epoch) and write.is_alive()
    assert seen(monolith) == [] and seen(catalog) == []

    moved = routes(monolith, catalog, "catalog", version=2)
    write_atomically(path, moved)
    flip = publish(engine, "catalog", Phase.DUAL_WRITE, fence_seconds=30)
    new_hash = hashlib.sha256(moved.encode()).hexdigest()
    wait_until(lambda: acknowledged(flip.epoch, new_hash), timeout=10, what="the flip acknowledged")
    assert write.is_alive() and seen(monolith) == [] and seen(catalog) == []

    lift = publish(engine, "catalog", Phase.DUAL_WRITE)
    write.join(timeout=20)
    assert write.response is not None, "the held write never completed"
    assert write.response.status_code == 200
    assert write.response.json()["upstream"] == "catalog"
    assert seen(catalog) == ["POST /api/v1/products/"] and seen(monolith) == []
    wait_until(lambda: acknowledged(lift.epoch, new_hash), timeout=10, what="the lift acknowledged")
    state = live(proxy)
    assert state["instance"] == replica().instance  # type: ignore[union-attr]
    assert state["contexts"]["catalog"] == {
        "phase": "dual_write",
        "epoch": lift.epoch,
        "served_epoch": lift.epoch,
        "fenced": False,
        "holding": False,
        "fence_epoch": None,
        "fence_until": None,
        "held": 0,
        "writes_in_flight": 0,
    }
    engine.dispose()
