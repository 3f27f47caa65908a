"""The connection gate and the file-descriptor budget (pure logic; the edge itself is
tested over real sockets in test_e2e_edge_limits.py)."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest
from pydantic import ValidationError

from strangler_proxy.config import ProxyConfig
from strangler_proxy.edge.limits import (
    ConnectionGate,
    EdgeLimits,
    check_max_connections,
    default_max_connections,
)


class FakeConnection:
    def __init__(self, idle_since: float | None) -> None:
        self.evictable_since = idle_since
        self.evicted = False

    def evict(self) -> None:
        self.evicted = True


def test_default_cap_leaves_a_reserve_of_the_fd_limit() -> None:
    assert default_max_connections(1024) == 768
    assert default_max_connections(20_000) == 15_000
    assert default_max_connections(256) == 128


def test_a_cap_too_close_to_the_fd_limit_is_refused_with_the_numbers() -> None:
    check_max_connections(896, 1024)
    with pytest.raises(ValueError, match=r"1000 client connections leave 24 .* 1024"):
        check_max_connections(1000, 1024)


def test_config_refuses_a_cap_too_close_to_this_process_fd_limit(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        with pytest.raises(ValidationError, match=r"max_connections[\s\S]*RLIMIT_NOFILE"):
            ProxyConfig(routes=tmp_path / "routes.yaml", max_connections=1000)
        config = ProxyConfig(routes=tmp_path / "routes.yaml")
        assert config.connection_cap == 768
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_config_reads_the_environment_and_bounds_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STRANGLER_CLIENT_HEADER_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("STRANGLER_MAX_CONNECTIONS_PER_CLIENT", "7")
    config = ProxyConfig(routes=tmp_path / "routes.yaml")
    assert config.client_header_timeout_seconds == 2.5
    assert config.max_connections_per_client == 7
    assert config.connection_cap == default_max_connections()
    monkeypatch.setenv("STRANGLER_CLIENT_IDLE_SECONDS", "0")
    with pytest.raises(ValidationError, match="client_idle_seconds"):
        ProxyConfig(routes=tmp_path / "routes.yaml")


def test_gate_caps_per_client_and_evicts_the_longest_idle_at_the_global_cap() -> None:
    gate = ConnectionGate(EdgeLimits(max_connections=3, max_connections_per_client=2))
    busy, old, recent = FakeConnection(None), FakeConnection(1.0), FakeConnection(5.0)
    assert gate.admit(busy, "a") is None
    assert gate.admit(old, "a") is None
    assert gate.admit(FakeConnection(0.0), "a") == "max_connections_per_client"
    assert gate.admit(recent, "b") is None
    newcomer = FakeConnection(9.0)
    assert gate.admit(newcomer, "c") is None  # at the cap: the longest idle makes room
    assert old.evicted and not recent.evicted and not busy.evicted
    assert gate.per_client == {"a": 1, "b": 1, "c": 1}
    gate.release(old)  # its close after the eviction counts nothing twice
    assert gate.per_client == {"a": 1, "b": 1, "c": 1}
    recent.evictable_since = newcomer.evictable_since = None  # all busy now
    assert gate.admit(FakeConnection(0.0), "d") == "max_connections"


def test_refusals_are_counted_and_reported_at_most_every_ten_seconds() -> None:
    gate = ConnectionGate(EdgeLimits())
    assert gate.refusal("max_connections", 100.0) == 1
    assert [gate.refusal("max_connections", 101.0 + n) for n in range(3)] == [0, 0, 0]
    assert gate.refusal("max_connections_per_client", 101.0) == 1  # each limit on its own
    assert gate.refusal("max_connections", 110.0) == 4
    assert gate.refused == {"max_connections": 5, "max_connections_per_client": 1}
