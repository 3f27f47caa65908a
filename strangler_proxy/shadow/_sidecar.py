"""The mirror sidecar: the proxy's :class:`~strangler_proxy.shadow.engine.MirrorEngine`, in its own process.

Started by :class:`~strangler_proxy.shadow._sidecar_client.MirrorProcess` with one end of a
socket pair; reads copies from it (:mod:`strangler_proxy.shadow._wire`), mirrors and
compares them with the unchanged engine (its bounded queue, its concurrency, its
noise learner, its results store from the environment) and reports outcome counts
back every 100 ms, so they reach the proxy's metrics.

It lowers its own CPU priority so that under load the primary path wins the cores
and copies are dropped instead: ``--sched idle`` (the default) puts it in Linux's
``SCHED_IDLE`` class, where it runs only on a core nothing else wants and any
waking proxy task preempts it at once; ``--nice`` adds niceness (alone, with
``--sched normal``, a niced sidecar still holds a core for its time slice when the
proxy wakes, which shows in the proxy's p99). It exits when the proxy goes: end of
file on the socket (the proxy closed it or died), the parent-death signal, or
SIGTERM; each drains the queue for up to ``STRANGLER_SHADOW_DRAIN`` seconds (5).

    python -m strangler_proxy.shadow._sidecar --fd 5 --parent 1234 --sched idle --nice 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
from collections import Counter
from typing import Any, cast

from prometheus_client import CollectorRegistry

from strangler_proxy.shadow._wire import SCHEDULING, FrameReader, encode
from strangler_proxy.shadow.engine import MirrorEngine, MirrorMetrics, ShadowRoute
from strangler_proxy.shadow.exchange import CapturedRequest, CapturedResponse
from strangler_proxy.shadow.settings import ShadowSettings

__all__ = ["DeltaMetrics", "SidecarProtocol", "lower_priority", "main"]

log = logging.getLogger("strangler.shadow.sidecar")

_REPORT_SECONDS = 0.1
_PR_SET_PDEATHSIG = 1


class DeltaMetrics(MirrorMetrics):
    """The engine's metrics, kept as deltas to send to the proxy (a private registry)."""

    def __init__(self) -> None:
        super().__init__(CollectorRegistry())
        self.deltas: Counter[tuple[str, str]] = Counter()

    def add(self, route: str, outcome: str, amount: float) -> None:
        self.deltas[(route, outcome)] += int(amount)

    def take(self) -> dict[tuple[str, str], int]:
        """The deltas since the last call."""
        taken, self.deltas = dict(self.deltas), Counter()
        return taken


class SidecarProtocol(asyncio.Protocol):
    """Turns frames from the proxy into engine submissions; end of file ends the run.

    Reading pauses while the engine's queue is full, so the socket and then the
    proxy's buffer fill, and the proxy drops copies before it copies anything
    (instead of pickling copies that this process would unpickle only to drop).
    """

    def __init__(self, engine: MirrorEngine, done: asyncio.Event) -> None:
        self.engine = engine
        self.done = done
        self.routes: dict[int, ShadowRoute] = {}
        self.reader = FrameReader()
        self.transport: asyncio.Transport | None = None
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def pause_when_full(self) -> None:
        if not self.paused and self.engine.queue_room == 0 and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True

    def resume_when_half_empty(self, queue_size: int) -> None:
        if self.paused and self.engine.queue_room * 2 >= queue_size and self.transport:
            self.transport.resume_reading()
            self.paused = False

    def data_received(self, data: bytes) -> None:
        for message in self.reader.feed(data):
            self._handle(message)

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "job":
            _, key, method, path, headers, body, status, response_headers, response_body = message
            request = CapturedRequest(method, path, headers, body)
            response = CapturedResponse(status, response_headers, response_body)
            self.engine.submit(self.routes[key], request, response, admitted=True)
            self.pause_when_full()
        elif kind == "route":
            self.routes[message[1]] = message[2]
        elif kind == "drops":
            for (route, context), count in message[1].items():
                self.engine.record_dropped(route, context, count)
        elif kind == "sheds":
            for (route, context), count in message[1].items():
                self.engine.record_shed(route, context, count)

    def eof_received(self) -> bool:
        self.done.set()
        return True  # keep our side open: the last counts still go back

    def connection_lost(self, exc: Exception | None) -> None:
        self.done.set()


def _report(transport: asyncio.Transport, engine: MirrorEngine, metrics: DeltaMetrics) -> None:
    deltas = metrics.take()
    if deltas and not transport.is_closing():
        transport.write(encode(("counts", deltas, engine.queue_depth)))


async def _reporter(
    transport: asyncio.Transport,
    protocol: SidecarProtocol,
    metrics: DeltaMetrics,
    queue_size: int,
) -> None:
    while True:
        await asyncio.sleep(_REPORT_SECONDS)
        _report(transport, protocol.engine, metrics)
        protocol.resume_when_half_empty(queue_size)


async def run(sock: socket.socket) -> None:
    """Mirror what arrives on ``sock`` until end of file or SIGTERM, then drain and report."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    settings = ShadowSettings.from_env()
    metrics = DeltaMetrics()
    engine = MirrorEngine.from_settings(settings, metrics)
    engine.start()
    transport, protocol = await loop.connect_accepted_socket(
        lambda: SidecarProtocol(engine, done), sock
    )
    reporter = asyncio.create_task(_reporter(transport, protocol, metrics, settings.queue_size))
    await done.wait()
    await engine.close(settings.drain)
    reporter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reporter
    _report(transport, engine, metrics)
    transport.close()


def _die_with_parent(parent: int) -> None:
    """SIGTERM when the proxy dies (Linux); exit now if it already has."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        sys.exit(0)


def lower_priority(sched: str, nice: int) -> None:
    """``SCHED_IDLE`` when ``sched`` is ``idle`` (where the OS has it), then ``nice``."""
    if sched == "idle" and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError as exc:
            log.warning("cannot enter SCHED_IDLE (%s): niceness only", exc)
    if nice:
        os.nice(nice)


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``--fd`` (socket to the proxy), ``--parent`` (its pid), priority."""
    parser = argparse.ArgumentParser(prog="python -m strangler_proxy.shadow._sidecar")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--nice", type=int, default=10)
    parser.add_argument("--sched", choices=SCHEDULING, default="idle")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the proxy, which closes us
    _die_with_parent(args.parent)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    lower_priority(args.sched, args.nice)
    sock = socket.socket(fileno=args.fd)
    try:
        import uvloop
    except ImportError:
        asyncio.run(run(sock))
    else:
        uvloop.run(run(sock))


if __name__ == "__main__":
    main()
