"""The proxy's side of a mirror sidecar: hand copies to another process, never wait.

Mirroring costs CPU: a second HTTP exchange per copy and a deepdiff comparison. In
the proxy's own event loop that work competes with the primary path on the same
cores. :class:`MirrorProcess` moves it into a sidecar
(:mod:`strangler_proxy.shadow._sidecar`, started at a lower CPU priority) that runs
the unchanged :class:`~strangler_proxy.shadow.engine.MirrorEngine`. On the request path the
proxy only pickles the copy into a bounded buffer; a non-blocking send every 2 ms
moves the buffer into a socket pair. When the buffer is full (the sidecar
is slow or starved of CPU) the copy is dropped and counted, as the engine drops when
its own queue is full.

The sidecar reports outcome counts back; they land in the proxy's own Prometheus
series (``strangler_shadow_outcomes_total``, ``strangler_shadow_queue_depth``). The
sidecar exits when the proxy goes (end of file on its socket, or the parent-death
signal); when it dies, the copies it held are counted as dropped, and the next copy
starts another (after a pause when it died right after starting).

    mirror = MirrorProcess(environ=os.environ, metrics=MirrorMetrics(registry))
    if mirror.admit(route, "GET") is Submitted.QUEUED:
        mirror.start()                              # inside the running loop
        mirror.submit(route, request, response, admitted=True)
    await mirror.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from strangler_proxy.shadow._wire import FINAL_OUTCOMES, FrameReader, encode
from strangler_proxy.shadow.engine import (
    MirrorMetrics,
    ShadowRoute,
    Submitted,
    admission,
    default_metrics,
)
from strangler_proxy.shadow.exchange import CapturedRequest, CapturedResponse

__all__ = ["MirrorProcess"]

log = logging.getLogger("strangler.shadow")

_QUICK_DEATH_SECONDS = 1.0  # a sidecar that dies sooner is not restarted at once...
_RESTART_PAUSE_SECONDS = 5.0  # ...but after this pause (its copies are dropped meanwhile)
# Copies wait this long in the proxy's buffer: batching spares the proxy a send system
# call and a cross-core wake-up of the sidecar per request.
_BATCH_SECONDS = 0.002
# Shed counts only feed the results store: sent a few times a second, not per batch
# (shedding happens when the proxy needs its CPU, so it must cost no wake-ups).
_SHEDS_SECONDS = 0.25


class _Sidecar:
    """One running sidecar: its process, the proxy's end of the socket pair, its buffer."""

    def __init__(self, popen: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self.popen = popen
        self.sock = sock
        self.started = time.monotonic()
        self.out = bytearray()
        self.keys: dict[int, tuple[ShadowRoute, int]] = {}  # id(route) -> (route, key)
        self.in_flight: Counter[str] = Counter()  # copies sent, outcome not reported yet
        self.reader = FrameReader()
        self.flush_scheduled = False
        self.writing = False
        self.gone = asyncio.Event()


class MirrorProcess:
    """A :class:`~strangler_proxy.shadow.engine.Mirror` that runs the engine in a sidecar process.

    ``buffer_bytes`` bounds the copies waiting for the sidecar, in the proxy's buffer
    and in the socket's (set to the same size); ``sched`` (``idle``: Linux
    ``SCHED_IDLE``, or ``normal``) and ``nice`` lower the sidecar's CPU priority. ``environ`` is the sidecar's environment (its ``STRANGLER_SHADOW_*``
    settings and results store).
    """

    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        metrics: MirrorMetrics | None = None,
        buffer_bytes: int = 1024 * 1024,
        nice: int = 10,
        sched: str = "idle",
        sample: Callable[[], float] = random.random,
    ) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        self.metrics = metrics or default_metrics()
        self.buffer_bytes = buffer_bytes
        self.nice = nice
        self.sched = sched
        self.stats: Counter[str] = Counter()
        self._sample = sample
        self._sidecar: _Sidecar | None = None
        self._pid = os.getpid()
        self._retry_at = 0.0
        self._closing = False
        self._pending_drops: Counter[tuple[str, str]] = Counter()
        self._pending_sheds: Counter[tuple[str, str]] = Counter()
        self._sheds_due = False
        self._next_key = 0

    # -- the request path -------------------------------------------------------------

    def admit(self, route: ShadowRoute, method: str) -> Submitted:
        """Whether a request of ``method`` on ``route`` is mirrored (counts the refusals).

        ``DROPPED`` already here when the buffer is full: the proxy then copies nothing.
        """
        outcome = admission(route, method, self._sample)
        if outcome is Submitted.QUEUED and not self._has_room():
            return self._drop(route)
        if outcome is not Submitted.QUEUED:
            self._count(route.name, outcome.value)
        return outcome

    def _has_room(self) -> bool:
        sidecar = self._sidecar
        if sidecar is None:
            return not self._closing and time.monotonic() >= self._retry_at
        return len(sidecar.out) < self.buffer_bytes

    def _drop(self, route: ShadowRoute) -> Submitted:
        self._pending_drops[(route.name, route.context)] += 1
        self._count(route.name, Submitted.DROPPED.value)
        return Submitted.DROPPED

    def shed(self, route: ShadowRoute) -> None:
        """Count one copy the adaptive shedder kept back; the sidecar stores it."""
        self._pending_sheds[(route.name, route.context)] += 1
        self._count(route.name, Submitted.SHED.value)
        if self._sidecar is not None and not self._sheds_due:
            self._sheds_due = True
            asyncio.get_running_loop().call_later(_SHEDS_SECONDS, self._send_sheds)

    def _send_sheds(self) -> None:
        self._sheds_due = False
        if self._sidecar is not None:
            self._schedule_flush(self._sidecar)

    def start(self) -> None:
        """Start the sidecar unless it runs (or is pausing after a quick death)."""
        if self._closing or (self._sidecar is not None and self._pid == os.getpid()):
            return
        if time.monotonic() < self._retry_at:
            return
        self._pid = os.getpid()  # a forked worker starts its own sidecar
        self._sidecar = self._spawn()

    def submit(
        self,
        route: ShadowRoute,
        request: CapturedRequest,
        primary: CapturedResponse,
        *,
        admitted: bool = False,
    ) -> Submitted:
        """Buffer a copy for the sidecar; never blocks (call from the event loop)."""
        if not admitted:
            outcome = self.admit(route, request.method)
            if outcome is not Submitted.QUEUED:
                return outcome
            self.start()
        sidecar = self._sidecar
        if sidecar is None or len(sidecar.out) >= self.buffer_bytes:
            return self._drop(route)
        key = self._key(sidecar, route)
        sidecar.out += encode(
            (
                "job",
                key,
                request.method,
                request.path,
                request.headers,
                request.body,
                primary.status,
                primary.headers,
                primary.body,
            )
        )
        sidecar.in_flight[route.name] += 1
        self._schedule_flush(sidecar)
        return Submitted.QUEUED

    def _key(self, sidecar: _Sidecar, route: ShadowRoute) -> int:
        known = sidecar.keys.get(id(route))
        if known is not None and known[0] is route:
            return known[1]
        self._next_key += 1
        sidecar.keys[id(route)] = (route, self._next_key)
        sidecar.out += encode(("route", self._next_key, route))
        return self._next_key

    def _count(self, route: str, outcome: str, amount: int = 1) -> None:
        self.stats[outcome] += amount
        self.metrics.add(route, outcome, amount)

    # -- the socket -------------------------------------------------------------------

    def _spawn(self) -> _Sidecar:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.buffer_bytes)
        argv = [sys.executable, "-m", "strangler_proxy.shadow._sidecar"]
        argv += ["--fd", str(theirs.fileno()), "--parent", str(os.getpid())]
        argv += ["--nice", str(self.nice), "--sched", self.sched]
        try:
            popen = subprocess.Popen(
                argv, pass_fds=(theirs.fileno(),), env=self.environ, stdin=subprocess.DEVNULL
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        sidecar = _Sidecar(popen, ours)
        asyncio.get_running_loop().add_reader(ours.fileno(), self._readable, sidecar)
        log.info("mirror sidecar %d started (%s, nice +%d)", popen.pid, self.sched, self.nice)
        return sidecar

    def _schedule_flush(self, sidecar: _Sidecar) -> None:
        """Send in batches: one send (and one sidecar wake-up) per ``_BATCH_SECONDS``."""
        if not sidecar.flush_scheduled and not sidecar.writing:
            sidecar.flush_scheduled = True
            asyncio.get_running_loop().call_later(_BATCH_SECONDS, self._flush, sidecar)

    def _flush(self, sidecar: _Sidecar) -> None:
        """Send what the socket takes now; wait for writability for the rest."""
        sidecar.flush_scheduled = False
        if sidecar is not self._sidecar:
            return
        if self._pending_drops and len(sidecar.out) < self.buffer_bytes:
            sidecar.out += encode(("drops", dict(self._pending_drops)))
            self._pending_drops.clear()
        if self._pending_sheds and len(sidecar.out) < self.buffer_bytes:
            sidecar.out += encode(("sheds", dict(self._pending_sheds)))
            self._pending_sheds.clear()
        try:
            sent = sidecar.sock.send(sidecar.out) if sidecar.out else 0
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._lost(sidecar, f"send failed: {exc}")
            return
        del sidecar.out[:sent]
        self._want_writable(sidecar, bool(sidecar.out))

    def _want_writable(self, sidecar: _Sidecar, wanted: bool) -> None:
        if wanted == sidecar.writing:
            return
        loop = asyncio.get_running_loop()
        if wanted:
            loop.add_writer(sidecar.sock.fileno(), self._flush, sidecar)
        else:
            loop.remove_writer(sidecar.sock.fileno())
        sidecar.writing = wanted

    def _readable(self, sidecar: _Sidecar) -> None:
        try:
            data = sidecar.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(sidecar, f"receive failed: {exc}")
            return
        if not data:
            self._lost(sidecar, "it closed its end")
            return
        for message in sidecar.reader.feed(data):
            if message[0] == "counts":
                self._report(sidecar, message[1], message[2])

    def _report(self, sidecar: _Sidecar, counts: dict[tuple[str, str], int], depth: int) -> None:
        for (route, outcome), amount in counts.items():
            self._count(route, outcome, amount)
            if outcome in FINAL_OUTCOMES:
                sidecar.in_flight[route] -= amount
        self.metrics.queue_depth.set(depth)

    # -- death and shutdown -----------------------------------------------------------

    def _lost(self, sidecar: _Sidecar, why: str) -> None:
        """The sidecar is gone: count the copies it held as dropped, reap it, restart later."""
        loop = asyncio.get_running_loop()
        self._want_writable(sidecar, False)
        loop.remove_reader(sidecar.sock.fileno())
        sidecar.sock.close()
        sidecar.gone.set()
        lost = {route: n for route, n in sidecar.in_flight.items() if n > 0}
        for route, amount in lost.items():
            self._count(route, Submitted.DROPPED.value, amount)
        self.metrics.queue_depth.set(0)
        if self._sidecar is sidecar:
            self._sidecar = None
        if not self._closing:
            self.metrics.sidecar_deaths.inc()
            lived = time.monotonic() - sidecar.started
            self._retry_at = time.monotonic() + (
                _RESTART_PAUSE_SECONDS if lived < _QUICK_DEATH_SECONDS else 0.0
            )
            log.warning(
                "mirror sidecar %d is gone (%s) after %.1fs; %d copies lost, counted as dropped",
                sidecar.popen.pid,
                why,
                lived,
                sum(lost.values()),
            )
        loop.run_in_executor(None, _reap, sidecar.popen)

    async def close(self, drain_timeout: float = 5.0) -> None:
        """Let the sidecar finish its queue (up to ``drain_timeout``), then stop it."""
        self._closing = True
        sidecar = self._sidecar
        if sidecar is None or self._pid != os.getpid():
            return
        deadline = time.monotonic() + drain_timeout
        while sidecar.out and not sidecar.gone.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # the writer callback is sending the rest
        if not sidecar.gone.is_set():
            with contextlib.suppress(OSError):
                sidecar.sock.shutdown(socket.SHUT_WR)  # end of file: drain, report, exit
            try:
                await asyncio.wait_for(sidecar.gone.wait(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                log.warning("mirror sidecar %d did not finish in time", sidecar.popen.pid)
                self._lost(sidecar, "shutdown")
        await asyncio.to_thread(_reap, sidecar.popen)

    def sidecar_pid(self) -> int | None:
        """The running sidecar's process id (None when none runs)."""
        return self._sidecar.popen.pid if self._sidecar is not None else None


def _reap(popen: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """Wait for a sidecar that closed its socket; kill it when it lingers."""
    try:
        popen.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()
