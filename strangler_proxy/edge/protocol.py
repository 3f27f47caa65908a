"""uvicorn's httptools protocol with the edge's limits enforced as bytes arrive.

uvicorn buffers a request head without a size limit until it is complete (its h11
size setting does not apply to httptools), starts its keep-alive timer only after a
first response, appends a chunked body's trailer fields to the request's headers and
rewrites any HTTP version it parsed as a request. :class:`EdgeProtocol` adds, per
connection:

- timeouts: the first head must arrive within ``header_timeout`` of accept (later heads
  within ``header_timeout`` of their first byte), a silent connection closes after
  ``idle_timeout`` (from accept and after each response), a request body with no byte
  for ``body_idle_timeout`` is cut (time the proxy itself stops reading does not count);
- caps: ``max_connections`` per process (a connection serving no request is closed to
  make room; when all are busy, 503) and ``max_connections_per_client`` per address (503);
- sizes counted as they arrive: the request-target (414), the head, and a chunked
  body's chunk lines and trailers (431);
- HTTP/1.0 and 1.1 only (505), no ``Transfer-Encoding`` in HTTP/1.0 (400), trailer
  fields dropped.

What one loop step writes to the client leaves in one ``send``
(:mod:`strangler_proxy.edge.coalescing`).

A refused request gets a short JSON answer with ``Connection: close``; the proxy then
stops writing, reads and discards what the client still sends for up to two seconds
(so the client reads the answer rather than a reset) and closes.

    protocol = EdgeProtocol.bound(EdgeLimits(header_timeout=5.0))
    uvicorn.Config(app, http=protocol, loop="uvloop")
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from strangler_proxy.edge.coalescing import CoalescingTransport
from strangler_proxy.edge.limits import LINGER_SECONDS, MAX_LINGERING, ConnectionGate, EdgeLimits

log = logging.getLogger("strangler.proxy.edge")

__all__ = ["EdgeProtocol"]


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; the answer is on the protocol."""


def _answer(status: int, code: str, detail: str, *, retry_after: bool = False) -> bytes:
    body = json.dumps({"code": code, "detail": detail}, separators=(",", ":")).encode()
    head = [
        STATUS_LINE[status],
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n",
        b"retry-after: 1\r\n" if retry_after else b"",
        b"\r\n",
    ]
    return b"".join(head) + body


ANSWERS = {
    "max_connections": _answer(
        503,
        "too_many_connections",
        "max_connections: this proxy process is serving its maximum of connections.",
        retry_after=True,
    ),
    "max_connections_per_client": _answer(
        503,
        "too_many_connections",
        "max_connections_per_client: too many connections from your address.",
        retry_after=True,
    ),
    "header_timeout": _answer(
        408, "header_timeout", "header_timeout: the request head did not arrive in time."
    ),
    "body_idle_timeout": _answer(
        408, "body_idle_timeout", "body_idle_timeout: the request body stopped arriving."
    ),
    "max_target_bytes": _answer(
        414, "target_too_long", "max_target_bytes: the request-target is too long."
    ),
    "max_header_bytes": _answer(
        431, "headers_too_large", "max_header_bytes: the request head is too large."
    ),
    "chunk_metadata": _answer(
        431,
        "headers_too_large",
        "max_header_bytes: a chunk line or the trailer section is too large.",
    ),
    "http_version": _answer(
        505, "http_version_not_supported", "http_version: only HTTP/1.0 and 1.1 are served."
    ),
    "chunked_http10": _answer(
        400, "bad_request", "Transfer-Encoding is not allowed in an HTTP/1.0 request."
    ),
    "malformed": _answer(400, "bad_request", "Malformed request."),
}


class EdgeProtocol(HttpToolsProtocol):
    """One client connection; bind the settings with :meth:`bound` (once per process)."""

    limits: ClassVar[EdgeLimits] = EdgeLimits()
    gate: ClassVar[ConnectionGate] = ConnectionGate(limits)

    @classmethod
    def bound(cls, limits: EdgeLimits) -> type[EdgeProtocol]:
        """A subclass enforcing ``limits`` with its own gate (call it in each worker)."""
        attributes = {"limits": limits, "gate": ConnectionGate(limits)}
        return type(cls.__name__, (cls,), attributes)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._accepted = 0.0  # accept time, until the first head begins
        self._in_head = False
        self._head_since = 0.0  # 0.0: the head began in the read being parsed
        self._head_bytes = 0
        self._chunk_bytes = 0  # the last data_received's size
        self._metadata = 0  # chunk-line and trailer bytes since the last chunk began
        self._body_seen = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._refusal: str | None = None
        self._lingering = False

    # -- connection -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A response's head and body leave in one send (uvicorn writes them apart).
        self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
        client = self.client[0] if self.client else ""
        refused = self.gate.admit(self, client)
        if refused is not None:
            self._refuse(refused)
            return
        limits = self.limits
        self._accepted = self.loop.time()
        self.timeout_keep_alive_task = self.loop.call_later(
            min(limits.idle_timeout, limits.header_timeout), self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.gate.release(self)
        if self._lingering:
            self._lingering = False
            self.gate.lingering -= 1
        self._cancel_timer()
        super().connection_lost(exc)

    @property
    def evictable_since(self) -> float | None:
        """When its idle timer ends, or its head began (None while it serves a request)."""
        if self._lingering:
            return None
        if self._in_head:
            return self._head_since
        idle = self.timeout_keep_alive_task  # armed at accept and after each response only
        return idle.when() if idle is not None else None

    def evict(self) -> None:
        """Closed to make room at the global cap (it serves no request)."""
        self._cancel_timer()
        self.transport.close()

    def eof_received(self) -> None:
        if self._lingering:
            self.transport.close()

    # -- bytes in -----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # a refused connection: discard until the client stops or the linger ends
        self._unset_keepalive_if_required()
        self._chunk_bytes = size = len(data)
        cycle = self.cycle
        if self._in_head:
            self._head_bytes += size
        elif cycle is not None and cycle.more_body:  # in a body: chunk lines and trailers
            self._metadata += size  # on_body takes the body's own bytes off again
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            self._refuse(self._refusal or "malformed")
            return
        if self._lingering or self.transport.is_closing():
            return
        if self._in_head:
            self._head_since = self._head_since or self.loop.time()
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse("max_header_bytes")
            elif self._timer is None:
                self._arm(self._head_since + self.limits.header_timeout)
            return
        cycle = self.cycle  # the request the bytes began, if they began one
        if cycle is not None and cycle.more_body:
            self._body_seen = self.loop.time()
            if self._metadata > self.limits.max_header_bytes:
                self._refuse("chunk_metadata")
            elif self._timer is None:
                self._arm(self._body_seen + self.limits.body_idle_timeout)
        elif (cycle is None or cycle.response_complete) and self._timer is None:
            # bytes that began no request (empty lines) stopped the idle timer: bound them
            self._arm(self.loop.time() + self.limits.header_timeout)

    # -- parser callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._head_since, self._accepted = self._accepted, 0.0

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.limits.max_target_bytes:
            self._stop("max_target_bytes")

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_timer()
        version = self.parser.get_http_version()
        if version != "1.1":
            if version != "1.0":
                self._stop("http_version")
            if any(name == b"transfer-encoding" for name, _ in self.headers):
                self._stop("chunked_http10")
        if self._head_bytes + self._chunk_bytes > self.limits.max_header_bytes:
            self._check_head_size()
        super().on_headers_complete()
        self._metadata = 0
        self.headers = []  # trailer fields (on_header after the body) land here, unused

    def on_body(self, body: bytes) -> None:
        self._metadata -= len(body)
        super().on_body(body)

    def on_chunk_header(self) -> None:
        self._metadata = 0

    # -- limits -------------------------------------------------------------------------

    def _check_head_size(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.max_header_bytes:
            self._stop("max_header_bytes")

    def _serving_nothing(self) -> bool:
        cycle = self.cycle
        return not self._in_head and (cycle is None or cycle.response_complete)

    def _stop(self, limit: str) -> None:
        """Refuse from inside a parser callback: the parser stops at the exception."""
        self._refusal = limit
        raise _Refused(limit)

    def _arm(self, deadline: float) -> None:
        self._timer = self.loop.call_at(deadline, self._timer_fired)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timer_fired(self) -> None:
        self._timer = None
        if self._lingering or self.transport.is_closing():
            return
        now = self.loop.time()
        limits = self.limits
        if self._in_head:
            deadline = self._head_since + limits.header_timeout
            if now >= deadline:
                self._refuse("header_timeout")
            else:
                self._arm(deadline)
        elif self._serving_nothing():
            if self.timeout_keep_alive_task is None:  # still nothing but empty lines
                self.transport.close()
        elif self.cycle is not None and self.cycle.more_body and not self.cycle.response_complete:
            if self.flow.read_paused or self.cycle.waiting_for_100_continue:
                self._body_seen = now  # the proxy is not reading yet: not the client's silence
            deadline = self._body_seen + limits.body_idle_timeout
            if now >= deadline:
                self._refuse("body_idle_timeout")
            else:
                self._arm(deadline)

    def _refuse(self, limit: str) -> None:
        """Answer ``limit``'s refusal (unless a response started), then close gracefully."""
        count = self.gate.refusal(limit, self.loop.time())
        if count:  # at most one line per limit every few seconds, however many refusals
            client = self.client[0] if self.client else "-"
            log.warning("%d connection(s) refused: %s (latest from %s)", count, limit, client)
        self._cancel_timer()
        self._unset_keepalive_if_required()
        cycle = self.cycle  # the previous request's while a head is refused
        answer = cycle is None or not cycle.response_started or cycle.response_complete
        if cycle is not None and not cycle.response_complete:  # its task sees a disconnect
            cycle.disconnected = True
            cycle.message_event.set()
        if answer:
            self.transport.write(ANSWERS[limit])
        if not answer or self.gate.lingering >= MAX_LINGERING or not self.transport.can_write_eof():
            self.transport.close()
            return
        self._lingering = True
        self.gate.lingering += 1
        self.transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def send_400_response(self, msg: str) -> None:  # uvicorn's path for parser errors
        self._refuse("malformed")
