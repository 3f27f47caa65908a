"""The monolith's ports: settings, how answers are classified, failover between replicas,
and the phase they follow (acknowledged only when no call of the old phase is in flight).

Real sockets (a loopback HTTP server) and a real control database (SQLite file); the
end-to-end saga tests are in tests/replay/test_order_saga.py.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dualwrite.django_app import ports
from migration_plans.control.processes import wait_until
from migration_plans.core.control_db import control_engine
from migration_plans.core.identity import IDENTITY_HEADER, Identity, verify_identity
from migration_plans.core.live_phase import publish
from migration_plans.core.phase import Phase
from migration_plans.core.replicas import Role, list_replicas

KEY = "ports-test-key"


def test_settings_come_from_the_context_and_the_shared_variables() -> None:
    env = {
        "INVENTORY_SERVICE_URL": "http://a:1/, http://b:2",
        "STRANGLER_IDENTITY_KEY": KEY,
        "STRANGLER_PORT_TIMEOUT": "2.5",
    }
    settings = ports.PortSettings.from_env("inventory", env)
    assert settings.urls == ["http://a:1", "http://b:2"]
    assert settings.timeout_s == 2.5
    assert settings.identity_key == KEY
    assert settings.user == "strangler-saga"


def test_a_bad_setting_names_its_variable() -> None:
    with pytest.raises(ports.PortConfigError, match="STRANGLER_PORT_"):
        ports.PortSettings.from_env("inventory", {"STRANGLER_PORT_TIMEOUT": "-1"})
    with pytest.raises(ports.PortConfigError, match="INVENTORY_SERVICE_URL"):
        ports.PortSettings.from_env("inventory", {"INVENTORY_SERVICE_URL": " , "})


def answer(status: int, body: object) -> httpx.Response:
    request = httpx.Request("POST", "http://service/api/v1/stock/reserve/")
    return httpx.Response(status, json=body, request=request)


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, "error"), (503, ""), (401, "not_authenticated"), (429, ""), (409, "phase_read_only")],
)
def test_failures_that_mean_not_now_are_retried(status: int, code: str) -> None:
    with pytest.raises(ports.ServiceUnavailable):
        ports._checked("inventory", answer(status, {"code": code, "detail": "x"}))


def test_a_refusal_keeps_its_code_and_detail() -> None:
    body = {"code": "insufficient_stock", "detail": "Not enough stock for product 7"}
    with pytest.raises(ports.RemoteRefused) as refused:
        ports._checked("inventory", answer(409, body))
    assert (refused.value.status_code, refused.value.code) == (409, "insufficient_stock")
    assert refused.value.detail == "Not enough stock for product 7"
    assert "/api/v1/stock/reserve/" in str(refused.value)


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length)
        type(self).seen.append(
            {
                "identity": self.headers[IDENTITY_HEADER],
                "request_id": self.headers["X-Request-ID"],
                "body": body.decode(),
            }
        )
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def service() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_refused_connection_fails_over_and_the_call_is_signed(service: str) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    settings = ports.PortSettings(context="inventory", urls=[dead, service], identity_key=KEY)
    client = ports.ServiceClient(settings)
    client._identity = Identity(sub="7", name="strangler-saga")  # no Django here

    response = client.request("POST", "/r/", json={"order_id": 1}, request_id="place_order:1:x")

    assert response.status_code == 201
    [call] = _Recorder.seen
    signed_for_inventory = verify_identity(call["identity"], key=KEY.encode(), audience="inventory")
    assert signed_for_inventory == Identity("7", "strangler-saga")
    assert call["request_id"] == "place_order:1:x"
    assert json.loads(call["body"]) == {"order_id": 1}


def test_no_replica_answering_is_a_retry_later() -> None:
    urls = [f"http://127.0.0.1:{closed_port()}" for _ in range(2)]
    client = ports.ServiceClient(
        ports.PortSettings(context="payments", urls=urls, identity_key=KEY)
    )
    client._identity = Identity(sub="7", name="strangler-saga")
    with pytest.raises(ports.ServiceUnavailable, match="unreachable"):
        client.request("POST", "/r/")


@pytest.fixture
def phases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ports._Phases]:
    monkeypatch.setenv("STRANGLER_CONTROL_DB_URL", f"sqlite:///{tmp_path / 'control.sqlite3'}")
    monkeypatch.setenv("STRANGLER_LIVE_PHASE", "on")
    monkeypatch.delenv("STRANGLER_PHASE", raising=False)
    monkeypatch.delenv("INVENTORY_PHASE", raising=False)
    fresh = ports._Phases()
    monkeypatch.setattr(ports, "_phases", fresh)
    yield fresh
    fresh.stop()


def monolith_epoch(context: str) -> int | None:
    for replica in list_replicas(control_engine()):
        if replica.role is Role.MONOLITH:
            return replica.epoch(context)
    return None


def test_nothing_published_is_shared_and_a_publication_is_followed(
    phases: ports._Phases,
) -> None:
    assert ports.phase("inventory") is Phase.SHARED
    publish(control_engine(), "inventory", Phase.SPLIT)
    wait_until(lambda: ports.remote("inventory"), timeout=10, interval=0.02)
    wait_until(lambda: monolith_epoch("inventory") == 1, timeout=10, interval=0.05)


def test_a_new_phase_is_acknowledged_only_after_the_calls_in_flight(
    phases: ports._Phases,
) -> None:
    engine = control_engine()
    publish(engine, "inventory", Phase.DUAL_WRITE)
    inside, leave = threading.Event(), threading.Event()
    seen: list[Phase] = []

    def local_transaction() -> None:
        with ports.calling("inventory") as current:
            seen.append(current["inventory"])
            inside.set()
            leave.wait(timeout=30)

    caller = threading.Thread(target=local_transaction)
    caller.start()
    assert inside.wait(timeout=10)
    wait_until(lambda: monolith_epoch("inventory") == 1, timeout=10, interval=0.05)

    publish(engine, "inventory", Phase.SPLIT, fence_seconds=5)
    # The switch waits for the call in flight: the old phase stays acknowledged.
    with pytest.raises(TimeoutError):
        wait_until(lambda: monolith_epoch("inventory") == 2, timeout=1.0, interval=0.05)
    assert ports.phase("inventory") is Phase.DUAL_WRITE
    leave.set()
    caller.join(timeout=10)
    wait_until(lambda: monolith_epoch("inventory") == 2, timeout=10, interval=0.05)
    assert seen == [Phase.DUAL_WRITE]


def test_calls_wait_while_the_context_is_fenced(
    phases: ports._Phases, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = control_engine()
    publish(engine, "inventory", Phase.DUAL_WRITE, fence_seconds=30)
    monkeypatch.setattr(ports, "_hold_s", 0.3)
    with pytest.raises(ports.PortHeld, match="fenced"), ports.calling("inventory"):
        pass
    publish(engine, "inventory", Phase.SPLIT)  # the cut-over lifts the fence
    wait_until(lambda: ports.remote("inventory"), timeout=10, interval=0.02)
    with ports.calling("inventory") as current:
        assert current == {"inventory": Phase.SPLIT}


def test_an_unreadable_control_database_refuses_to_guess(monkeypatch: pytest.MonkeyPatch) -> None:
    unreachable = f"postgresql://postgres@127.0.0.1:{closed_port()}/control"
    monkeypatch.setenv("STRANGLER_CONTROL_DB_URL", unreachable)
    monkeypatch.setenv("STRANGLER_LIVE_PHASE", "on")
    monkeypatch.delenv("STRANGLER_PHASE", raising=False)
    monkeypatch.delenv("INVENTORY_PHASE", raising=False)
    monkeypatch.setattr(ports, "_phases", ports._Phases())
    with pytest.raises(ports.PortHeld, match="cannot be read"):
        ports.phase("inventory")


def test_a_pinned_phase_needs_no_control_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVENTORY_PHASE", "split")
    assert ports.remote("inventory")
    monkeypatch.setenv("INVENTORY_PHASE", "splitt")
    with pytest.raises(ports.PortConfigError, match="INVENTORY_PHASE"):
        ports.phase("inventory")
