"""The mirror sidecar of a real proxy process: bounded hand-off, counts, restart, exit.

The proxy (``python -m strangler_proxy serve``) starts ``strangler_proxy.shadow._sidecar``
as its child on the first mirrored request. These tests find that child in ``/proc``,
stop it (SIGSTOP: it reads nothing, as when starved of CPU), kill it, or kill the
proxy under it, and watch the proxy's ``/metrics``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from migration_plans.control.processes import ManagedProcess, wait_until
from strangler_proxy.shadow._wire import FrameReader, encode
from strangler_proxy.shadow.settings import ShadowSettings
from strangler_proxy.shadow.shadowing import Shadowing

from .conftest import Shops
from .test_proxy_shadow import ADMIN_TOKEN, mirror_counters, start_proxy

pytestmark = [pytest.mark.e2e]

DETAIL = "/api/v1/products/1/"


def metric(proxy: str, name: str) -> float:
    response = httpx.get(
        proxy + "/_strangler/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    for line in response.text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def sidecars(parent: int) -> list[int]:
    """Live (not zombie) mirror sidecars whose parent is ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if (
            int(stat[1]) == parent
            and stat[0] != "Z"
            and b"strangler_proxy.shadow._sidecar" in cmdline
        ):
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def compared(proxy: str) -> float:
    counters = mirror_counters(proxy)
    return counters.get("matched", 0) + counters.get("mismatched", 0)


def the_sidecar(process: ManagedProcess) -> int:
    wait_until(lambda: len(sidecars(process.pid)) == 1, timeout=30, what="one sidecar")
    return sidecars(process.pid)[0]


@pytest.fixture
def proxy(tmp_path: Path, shops: Shops) -> Iterator[Callable[..., tuple[ManagedProcess, str]]]:
    started: list[ManagedProcess] = []

    def start(**env: str) -> tuple[ManagedProcess, str]:
        process, url = start_proxy(tmp_path, shops.primary, shops.candidate, env)
        started.append(process)
        return process, url

    yield start
    for process in started:
        process.stop()


def warmed(
    start: Callable[..., tuple[ManagedProcess, str]], **env: str
) -> tuple[ManagedProcess, str, int]:
    """A proxy whose sidecar runs and has compared one copy."""
    process, url = start(**env)
    assert httpx.get(url + DETAIL).status_code == 200
    wait_until(lambda: compared(url) == 1, timeout=30, what="the first comparison")
    return process, url, the_sidecar(process)


def test_copies_are_dropped_and_counted_when_the_sidecar_buffer_is_full(
    proxy: Callable[..., tuple[ManagedProcess, str]],
) -> None:
    process, url, sidecar = warmed(proxy, STRANGLER_SHADOW_BUFFER_BYTES="4096")
    os.kill(sidecar, signal.SIGSTOP)  # reads nothing, like a sidecar starved of CPU
    try:
        with httpx.Client(base_url=url) as client:
            for _ in range(100):
                response = client.get(DETAIL)
                assert (response.status_code, response.json()["name"]) == (200, "Lamp")
        assert mirror_counters(url).get("dropped", 0) > 0  # counted by the proxy at once
    finally:
        os.kill(sidecar, signal.SIGCONT)
    # every copy is accounted for: queued by the sidecar's engine, or dropped
    wait_until(
        lambda: sum(mirror_counters(url).get(k, 0) for k in ("queued", "dropped")) == 101,
        timeout=30,
        what="101 copies queued or dropped",
    )
    counters = mirror_counters(url)
    wait_until(lambda: compared(url) == counters["queued"], timeout=30, what="queued compared")
    assert sidecars(process.pid) == [sidecar]


def test_a_dead_sidecar_is_replaced_and_the_copies_it_held_count_as_dropped(
    proxy: Callable[..., tuple[ManagedProcess, str]],
) -> None:
    process, url, sidecar = warmed(proxy)
    os.kill(sidecar, signal.SIGSTOP)
    with httpx.Client(base_url=url) as client:
        for _ in range(5):
            assert client.get(DETAIL).status_code == 200
        os.kill(sidecar, signal.SIGKILL)
        wait_until(
            lambda: mirror_counters(url).get("dropped", 0) == 5,
            timeout=30,
            what="the 5 copies it held counted as dropped",
        )
        assert metric(url, "strangler_shadow_sidecar_deaths_total") == 1

        def mirrored_again() -> bool:
            assert client.get(DETAIL).status_code == 200  # the primary never waits
            return compared(url) >= 2

        # a sidecar that died young is restarted after a pause: copies meanwhile drop
        wait_until(mirrored_again, timeout=30, interval=0.2, what="a new sidecar comparing")
    replacement = the_sidecar(process)
    assert replacement != sidecar and not alive(sidecar)


def test_the_sidecar_exits_when_the_proxy_dies(
    proxy: Callable[..., tuple[ManagedProcess, str]],
) -> None:
    process, _, sidecar = warmed(proxy)
    os.kill(process.pid, signal.SIGKILL)  # the proxy only: no clean shutdown
    wait_until(lambda: not alive(sidecar), timeout=30, what="the orphaned sidecar to exit")


def test_frames_survive_any_split_of_the_stream() -> None:
    frames = encode(("job", 1, b"x" * 300)) + encode(("drops", {("r", "c"): 2}))
    for cut in (1, 3, 4, 5, 100, len(frames) - 1):
        reader = FrameReader()
        got = reader.feed(frames[:cut]) + reader.feed(frames[cut:])
        assert got == [("job", 1, b"x" * 300), ("drops", {("r", "c"): 2})]


def test_the_mirror_mode_and_scheduling_come_from_the_environment() -> None:
    assert ShadowSettings.from_env({}).mode == "process"
    settings = ShadowSettings.from_env(
        {"STRANGLER_SHADOW_MODE": "inline", "STRANGLER_SHADOW_SCHED": "normal"}
    )
    assert (settings.mode, settings.sched) == ("inline", "normal")
    with pytest.raises(ValueError, match="STRANGLER_SHADOW_MODE"):
        ShadowSettings.from_env({"STRANGLER_SHADOW_MODE": "thread"})
    with pytest.raises(ValueError, match="STRANGLER_SHADOW_STORE"):  # not in the sidecar
        Shadowing.from_env({"STRANGLER_SHADOW_STORE": "mongo"})
