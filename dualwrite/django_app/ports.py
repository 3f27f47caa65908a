"""Ports: how monolith code calls a context that may have moved out (DESIGN.md, "Cross-context calls").

Monolith code that used another context's tables in its own transaction asks the port
which phase that context is in and acts on it:

- ``shared`` and ``dual_write``: the local implementation, in the caller's transaction
  (in dual_write the capture triggers carry the change to the service);
- ``split``: the remote implementation, an HTTP call to the context's service.

The phase is the published one (the live phase, followed without a restart) unless the
environment pins it (``<CONTEXT>_PHASE``, ``STRANGLER_PHASE``, ``STRANGLER_LIVE_PHASE=off``);
nothing published and nothing pinned means ``shared``. The process registers as a
:attr:`Role.MONOLITH` replica and acknowledges each epoch only when no call of that
context is in flight (a local write of the old phase has committed, so its capture event
is in the outbox the cut-over drains); while a context is fenced, new calls wait.

    with calling("inventory", "payments") as phases:
        if phases["inventory"] is Phase.SPLIT: ...

The monolith authenticates to a service with the same signed identity header the proxy
sends (``X-Strangler-Identity``, HMAC key ``STRANGLER_IDENTITY_KEY``), as the staff
account ``STRANGLER_PORT_USER`` (default ``strangler-saga``, unusable password, created
on first use). It calls the services directly (``<CONTEXT>_SERVICE_URL``, comma-separated
replicas, connect failures fail over), never through the proxy, which strips that header.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from migration_plans.core.control_db import control_db_url
from migration_plans.core.identity import (
    DEV_IDENTITY_KEY,
    IDENTITY_HEADER,
    Identity,
    sign_identity,
)
from migration_plans.core.live_phase import (
    PhaseFollower,
    PhaseGate,
    PhaseState,
    create_phase_tables,
    follows_published_phase,
)
from migration_plans.core.phase import Phase
from migration_plans.core.replicas import Ack, ReplicaReporter, Role, create_replica_tables
from migration_plans.core.settings import BadSetting, context_env, context_port, env_number
from migration_plans.core.yamlfile import ConfigError

__all__ = [
    "Phase",
    "PortConfigError",
    "PortHeld",
    "RemoteRefused",
    "ServiceClient",
    "ServiceUnavailable",
    "calling",
    "client",
    "phase",
    "remote",
]

log = logging.getLogger("strangler.ports")


def default_service_url(context: str, environ: Mapping[str, str]) -> str:
    """Where ``context``'s service listens on this host by default (its plan's port, the
    shipped default, else the port derived from its name: ``context_port``)."""
    try:
        return f"http://127.0.0.1:{context_port(context, environ=environ)}"
    except (BadSetting, ConfigError) as exc:
        raise PortConfigError(f"port settings of {context}: {exc}") from exc


class PortConfigError(ValueError):
    """A port setting in the environment cannot be used (names the variable)."""


class ServiceUnavailable(Exception):
    """The service could not be reached or failed (5xx, timeout): retry later."""


class PortHeld(ServiceUnavailable):
    """The context stayed fenced past ``STRANGLER_PORT_HOLD_SECONDS``: retry later."""


class RemoteRefused(Exception):
    """The service refused the call (4xx): not worth retrying as it is."""

    def __init__(self, context: str, response: httpx.Response) -> None:
        self.status_code = response.status_code
        body = _json(response)
        self.code = str(body.get("code", "")) if isinstance(body, dict) else ""
        self.detail = str(body.get("detail", "")) if isinstance(body, dict) else response.text
        super().__init__(
            f"{context} service refused {response.request.method} {response.request.url.path}: "
            f"{self.status_code} {self.code or ''} {self.detail[:200]}".strip()
        )


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class PortSettings(BaseModel):
    """A context's remote side, from ``<CONTEXT>_SERVICE_URL`` and ``STRANGLER_PORT_*``."""

    context: str
    urls: list[str] = Field(min_length=1)
    timeout_s: float = Field(5.0, gt=0, le=120)
    connect_timeout_s: float = Field(2.0, gt=0, le=60)
    user: str = Field("strangler-saga", min_length=1, max_length=150)
    identity_key: str

    @classmethod
    def from_env(cls, context: str, environ: Mapping[str, str] | None = None) -> PortSettings:
        env = os.environ if environ is None else environ
        urls = context_env(context, "SERVICE_URL", environ=env) or default_service_url(context, env)
        values: dict[str, Any] = {
            "context": context,
            "urls": [url.strip().rstrip("/") for url in urls.split(",") if url.strip()],
            "identity_key": env.get("STRANGLER_IDENTITY_KEY", "") or DEV_IDENTITY_KEY,
        }
        for field, name in (
            ("timeout_s", "PORT_TIMEOUT"),
            ("connect_timeout_s", "PORT_CONNECT_TIMEOUT"),
            ("user", "PORT_USER"),
        ):
            raw = env.get(f"STRANGLER_{name}", "").strip()
            if raw:
                values[field] = raw
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
                for error in exc.errors()
            )
            raise PortConfigError(
                f"port settings of {context} ({context.upper()}_SERVICE_URL, "
                f"STRANGLER_PORT_*): {problems}"
            ) from None


# -- the phase each called context is in ----------------------------------------------


class _Phases:
    """This process's view of every context's phase, with one gate per context."""

    def __init__(self) -> None:
        self._gates: dict[str, PhaseGate] = {}
        self._states: dict[str, PhaseState] = {}
        self._changed = threading.Condition()
        self._follower: PhaseFollower | None = None
        self._reporter: ReplicaReporter | None = None
        self._lock = threading.Lock()
        self._starting = threading.Lock()

    def gate(self, context: str) -> PhaseGate:
        with self._lock:
            return self._gates.setdefault(context, PhaseGate())

    def start(self) -> None:
        """Follow the published phases and register as a monolith replica (once).

        Returns only after the phases were read: until then no call may guess one (a
        guessed ``shared`` would write a split context's old tables). A control database
        that cannot be read raises :class:`PortHeld` (the caller retries later).
        """
        if self._follower is not None:
            return
        with self._starting:
            if self._follower is not None:
                return
            url = control_db_url()
            follower = PhaseFollower(url, self._switch)
            try:
                create_phase_tables(follower.engine)
                create_replica_tables(follower.engine)
                follower.refresh()
            except SQLAlchemyError as exc:
                follower.engine.dispose()
                raise PortHeld(f"the published phases cannot be read ({url}): {exc}") from exc
            follower.start()
            self._reporter = ReplicaReporter(
                url, Role.MONOLITH, snapshot=self._ack, engine=follower.engine
            ).start()  # one connection for both: every monolith process has them
            self._follower = follower
        atexit.register(self.stop)

    def stop(self) -> None:
        if self._reporter is not None:
            self._reporter.stop()
        if self._follower is not None:
            self._follower.stop()

    def _switch(self, state: PhaseState) -> None:
        """A newer epoch: wait for the context's calls in flight, then serve and acknowledge."""
        with self.gate(state.context).switching(), self._changed:
            self._states[state.context] = state
            self._changed.notify_all()
        if self._reporter is not None:
            self._reporter.report_now()

    def _ack(self) -> Ack:
        with self._changed:
            return Ack(epochs={c: s.epoch for c, s in self._states.items()})

    def state(self, context: str) -> PhaseState | None:
        with self._changed:
            return self._states.get(context)

    def wait_for_change(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)


_phases = _Phases()


def _pinned(context: str) -> Phase:
    raw = context_env(context, "PHASE", Phase.SHARED.value)
    try:
        return Phase(raw)
    except ValueError:
        raise PortConfigError(
            f"{context.upper()}_PHASE (or STRANGLER_PHASE)={raw!r} is not one of "
            f"{[p.value for p in Phase]}"
        ) from None


def phase(context: str) -> Phase:
    """The phase ``context`` is served in by this process now."""
    if not follows_published_phase(context):
        return _pinned(context)
    _phases.start()
    state = _phases.state(context)
    return Phase.SHARED if state is None else state.phase


def remote(context: str) -> bool:
    """Whether calls to ``context`` go to its service now (it is split)."""
    return phase(context) is Phase.SPLIT


@contextmanager
def _passing(context: str, hold_s: float) -> Iterator[Phase]:
    """Hold ``context``'s gate shared once it is not fenced; yields its phase."""
    if not follows_published_phase(context):
        yield _pinned(context)
        return
    _phases.start()
    deadline = time.monotonic() + hold_s
    gate = _phases.gate(context)
    while True:
        with gate.passing():
            state = _phases.state(context)
            if state is None or not state.holds_writes():
                yield Phase.SHARED if state is None else state.phase
                return
        left = deadline - time.monotonic()
        if left <= 0:
            raise PortHeld(f"{context} stayed fenced for more than {hold_s:.1f}s")
        _phases.wait_for_change(min(left, 0.05))


def _hold_seconds() -> float:
    global _hold_s
    if _hold_s is None:
        _hold_s = env_number("STRANGLER_PORT_HOLD_SECONDS", 10.0, low=0, high=300)
    return _hold_s


_hold_s: float | None = None


@contextmanager
def calling(*contexts: str) -> Iterator[dict[str, Phase]]:
    """Call ``contexts``: yields their phases, stable until the block ends.

    Keep the block open until the local transaction that writes those contexts' tables
    has committed: a phase switch waits for it, so its changes reach the capture outbox
    before the switch is acknowledged.
    """
    hold_s = _hold_seconds()
    with ExitStack() as stack:
        phases = {
            context: stack.enter_context(_passing(context, hold_s))
            for context in sorted(set(contexts))
        }
        yield phases


# -- the remote side ------------------------------------------------------------------


class ServiceClient:
    """Calls one context's service as the port user; fails over between its replicas."""

    def __init__(self, settings: PortSettings) -> None:
        self.settings = settings
        self._next = itertools.count()
        self._http = httpx.Client(
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
        )
        self._identity: Identity | None = None

    def _identity_header(self) -> str:
        if self._identity is None:
            self._identity = _port_identity(self.settings.user)
        settings = self.settings
        return sign_identity(
            self._identity, key=settings.identity_key.encode(), audience=settings.context
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> httpx.Response:
        """The service's answer (2xx); :class:`RemoteRefused` on 4xx, else
        :class:`ServiceUnavailable`. ``X-Request-ID`` carries the saga step's key."""
        headers = {IDENTITY_HEADER: self._identity_header(), "Accept": "application/json"}
        if request_id:
            headers["X-Request-ID"] = request_id
        urls = self.settings.urls
        start = next(self._next)
        last: Exception | None = None
        for offset in range(len(urls)):
            base = urls[(start + offset) % len(urls)]
            try:
                response = self._http.request(
                    method, base + path, json=json, params=params, headers=headers
                )
            except httpx.ConnectError as exc:  # nothing was sent: the next replica may answer
                last = exc
                continue
            except httpx.HTTPError as exc:
                raise ServiceUnavailable(
                    f"{self.settings.context} service {method} {path}: {type(exc).__name__}: {exc}"
                ) from exc
            return _checked(self.settings.context, response)
        raise ServiceUnavailable(
            f"{self.settings.context} service unreachable at {', '.join(urls)}: {last}"
        )


#: Refusals that say "not now" or "not configured yet" rather than "no": retried.
TRANSIENT_STATUS = frozenset({401, 403, 408, 425, 429})
TRANSIENT_CODES = frozenset({"phase_read_only"})


def _checked(context: str, response: httpx.Response) -> httpx.Response:
    """The response if 2xx; transient failures (5xx, 401/403 of a key being rotated, a
    service still serving the shared phase) raise :class:`ServiceUnavailable`."""
    status = response.status_code
    if status < 400:
        return response
    refusal = RemoteRefused(context, response)
    if status >= 500 or status in TRANSIENT_STATUS or refusal.code in TRANSIENT_CODES:
        raise ServiceUnavailable(str(refusal))
    raise refusal


def _port_identity(username: str) -> Identity:
    """The port's staff account (created on first use, password unusable)."""
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(
        username=username, defaults={"is_staff": True, "is_active": True}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    elif not user.is_staff:
        raise PortConfigError(
            f"port user {username!r} exists but is not staff; the services refuse its writes"
        )
    return Identity(sub=str(user.pk), name=username)


_clients: dict[str, ServiceClient] = {}
_clients_lock = threading.Lock()


def client(context: str) -> ServiceClient:
    """The process's client of ``context``'s service (settings read once)."""
    with _clients_lock:
        found = _clients.get(context)
        if found is None:
            found = _clients[context] = ServiceClient(PortSettings.from_env(context))
        return found
