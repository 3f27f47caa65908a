"""A lean HTTP/1.1 client for the forwarding hot path: pooled keep-alive connections
parsed with httptools.

The proxy forwards bytes: it needs no cookies, redirects, decompression, URL objects
or per-request header bookkeeping. aiohttp's ClientSession does all of that on every
request and was measured at about half of the proxy's CPU per request; this client is
an :class:`asyncio.Protocol` per connection and one future per response.

    client = UpstreamClient("127.0.0.1", 8001, ClientLimits(connect=1, read=30, pool_size=100))
    response = await client.request("GET", "/api/v1/products/1/", [("Host", "shop")], None)
    try:
        body = await response.read()          # or: async for chunk in response.chunks()
    finally:
        response.release()                    # back to the pool when reusable
    await client.close()

Errors: :class:`ConnectFailed` (no connection: nothing was sent), :class:`Disconnected`
(the connection closed before the response was complete; ``before_response`` says no
byte of a response had arrived, so a safe request may be sent again), ``TimeoutError``
(no byte from the upstream for ``read`` seconds), :class:`ProtocolError` (not HTTP),
:class:`PoolTimeout` (no connection free within ``pool_wait`` seconds: nothing was sent),
:class:`BodyStalled` (a streamed request body gave nothing for ``body_idle`` seconds: the
connection is discarded).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import cast

import httptools

__all__ = [
    "BodyStalled",
    "ClientLimits",
    "ConnectFailed",
    "Disconnected",
    "PoolTimeout",
    "ProtocolError",
    "UpstreamClient",
    "UpstreamResponse",
]

_BODYLESS_STATUSES = frozenset({204, 304})
_EMPTY_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_PAUSE_AT = 256 * 1024  # buffered response bytes before reading from the upstream pauses
_RESUME_AT = 64 * 1024
_MAX_CHUNK = 256 * 1024  # largest piece handed to the caller at once


class ConnectFailed(OSError):
    """No connection to the upstream could be opened (refused, unreachable, timed out)."""


class Disconnected(ConnectionError):
    """The upstream closed the connection before the response was complete."""

    def __init__(self, message: str, *, before_response: bool) -> None:
        super().__init__(message)
        self.before_response = before_response


class ProtocolError(Exception):
    """The upstream's answer is not valid HTTP/1.1."""


class PoolTimeout(Exception):
    """Every pooled connection stayed busy for ``pool_wait`` seconds; nothing was sent."""


class BodyStalled(Exception):
    """The request body being streamed gave no chunk for ``body_idle`` seconds."""


@dataclass(frozen=True)
class ClientLimits:
    """Timeouts (seconds) and the pool size of one upstream.

    ``pool_wait``: how long a request waits for a connection when ``pool_size`` are busy
    (None: no limit). ``body_idle``: how long a streamed request body may give nothing
    (None: no limit).
    """

    connect: float = 1.0
    read: float = 30.0
    pool_size: int = 100
    keepalive: float = 30.0
    pool_wait: float | None = None
    body_idle: float | None = None


class UpstreamResponse:
    """One response: status and raw headers at once, the body as it arrives."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_connection",
        "_done",
        "_error",
        "_waiter",
        "content_length",
        "raw_headers",
        "status",
    )

    def __init__(self, connection: _Connection) -> None:
        self._connection: _Connection | None = connection
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.content_length: int | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    @property
    def complete(self) -> bool:
        """True when the whole body has arrived."""
        return self._done

    async def read(self) -> bytes:
        """The whole body (use for bodies of known, bounded size)."""
        while not self._done:
            await self._wait()
        body = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return body

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, in pieces of at most 256 KiB, with backpressure."""
        while True:
            if self._chunks:
                yield self._take()
            elif self._done:
                return
            else:
                await self._wait()

    def release(self) -> None:
        """Give the connection back: to the pool when the exchange ended cleanly."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.finished(reusable=self._done and self._error is None)

    # -- fed by the connection --------------------------------------------------------

    def _take(self) -> bytes:
        piece = self._chunks.popleft()
        while self._chunks and len(piece) + len(self._chunks[0]) <= _MAX_CHUNK:
            piece += self._chunks.popleft()
        self._buffered -= len(piece)
        if self._buffered < _RESUME_AT and self._connection is not None:
            self._connection.resume()
        return piece

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None
        if self._error is not None:
            raise self._error

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _body(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        if self._buffered > _PAUSE_AT and self._connection is not None:
            self._connection.pause()
        self._wake()

    def _finish(self) -> None:
        if self._error is None:
            self._done = True
            self._wake()

    def _fail(self, error: BaseException) -> None:
        if not self._done and self._error is None:
            self._error = error
            self._wake()


class _Connection(asyncio.Protocol):
    """One keep-alive connection; carries at most one exchange at a time."""

    def __init__(self, client: UpstreamClient) -> None:
        self.client = client
        self.loop = client.loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.response: UpstreamResponse | None = None
        self.head: asyncio.Future[UpstreamResponse] | None = None
        self.parser: httptools.HttpResponseParser | None = None
        self.method = ""
        self.bodyless = False
        self.until_eof = False
        self.keep_alive = True
        self.received = False
        self.last_read = 0.0
        self.paused = False
        self.timer: asyncio.TimerHandle | None = None
        self.drained: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser is None:  # bytes while idle: not a response to anything we sent
            self.close()
            return
        self.received = True
        self.last_read = self.loop.time()
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("the upstream switched protocols; not supported"))
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"malformed response from the upstream: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.client._forget(self)
        self._cancel_timer()
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)  # drain() sees ``closed``
        response = self.response
        if self.parser is None or response is None:
            return
        clean_eof = exc is None and response._error is None
        if self.until_eof and clean_eof and self.head is not None and self.head.done():
            self._complete()  # a body delimited by the end of the connection
            return
        error = Disconnected(
            "the upstream closed the connection" + (f": {exc}" if exc else ""),
            before_response=not self.received,
        )
        self._fail(error)

    def pause_writing(self) -> None:
        self.drained = self.loop.create_future()

    def resume_writing(self) -> None:
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        self.drained = None

    # -- httptools callbacks ------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.response is not None
        self.response.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        response, parser = self.response, self.parser
        assert response is not None and parser is not None
        status = parser.get_status_code()
        if 100 <= status < 200:  # informational (100 Continue, 103 Early Hints): skipped
            response.raw_headers.clear()
            return
        response.status = status
        self.keep_alive = parser.should_keep_alive()
        length, chunked = _framing(response.raw_headers)
        response.content_length = length
        self.bodyless = self.method == "HEAD" or status in _BODYLESS_STATUSES
        self.until_eof = not self.bodyless and length is None and not chunked
        if self.head is not None and not self.head.done():
            self.head.set_result(response)
        if self.bodyless:  # the parser cannot know a HEAD answer has no body
            self._complete()

    def on_body(self, body: bytes) -> None:
        if self.response is not None and not self.bodyless:
            self.response._body(body)

    def on_message_complete(self) -> None:
        response = self.response
        if response is None or not response.status:  # an informational response ended
            return
        self._complete()

    # -- the exchange -------------------------------------------------------------------

    def begin(self, method: str, response: UpstreamResponse) -> asyncio.Future[UpstreamResponse]:
        self.method = method
        self.response = response
        self.parser = httptools.HttpResponseParser(self)
        self.bodyless = self.until_eof = self.received = False
        self.keep_alive = True
        self.head = self.loop.create_future()
        return self.head

    def sent(self) -> None:
        """The request is on the wire: from now on the upstream's silence is timed."""
        self.last_read = self.loop.time()
        if self.timer is None and self.response is not None and not self.response.complete:
            self._arm_timer(self.client.limits.read)

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self) -> None:
        if self.drained is not None:
            await self.drained
        if self.closed:
            raise Disconnected("the upstream closed the connection", before_response=False)

    def finished(self, *, reusable: bool) -> None:
        """The caller is done with the response."""
        reusable = reusable and self.keep_alive and not self.until_eof and not self.closed
        self.response = None
        self.parser = None
        self.head = None
        self._cancel_timer()
        if not reusable:
            self.close()
        elif self.paused:  # a body read to its end never leaves reading paused
            self.resume()
        self.client._release(self, reusable)

    def pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.last_read = self.loop.time()
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True

    def _complete(self) -> None:
        self._cancel_timer()
        if self.response is not None:
            self.response._finish()

    def _fail(self, error: BaseException) -> None:
        self._cancel_timer()
        if self.head is not None and not self.head.done():
            self.head.set_exception(error)
        elif self.response is not None:
            self.response._fail(error)
        self.close()

    # A read timeout is a silence of ``read`` seconds: one timer per exchange, moved
    # along lazily when it fires rather than re-armed on every read.
    def _arm_timer(self, delay: float) -> None:
        self.timer = self.loop.call_later(delay, self._timer_fired)

    def _timer_fired(self) -> None:
        self.timer = None
        timeout = self.client.limits.read
        if self.paused:  # the caller is slow, not the upstream
            self._arm_timer(timeout)
            return
        silent = self.loop.time() - self.last_read
        if silent < timeout:
            self._arm_timer(timeout - silent)
            return
        self._fail(TimeoutError(f"no data from the upstream for {timeout:g} s"))

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def _framing(headers: Sequence[tuple[bytes, bytes]]) -> tuple[int | None, bool]:
    """``(content length, chunked)`` of a response's headers."""
    length: int | None = None
    chunked = False
    for name, value in headers:
        if len(name) == 14 and name.lower() == b"content-length":
            text = value.strip()
            length = int(text) if text.isdigit() else None
        elif len(name) == 17 and name.lower() == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    return (None if chunked else length), chunked


class UpstreamClient:
    """Keep-alive connections to one ``host:port``, at most ``limits.pool_size`` open."""

    def __init__(
        self,
        host: str,
        port: int,
        limits: ClientLimits | None = None,
        *,
        ssl: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.limits = limits or ClientLimits()
        self.ssl = ssl
        self.loop = asyncio.get_running_loop()
        self._idle: list[_Connection] = []
        self._open = 0
        self._waiters: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()
        self._closed = False

    @property
    def open_connections(self) -> int:
        return self._open

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    @property
    def waiting(self) -> int:
        """Requests waiting for a connection because ``pool_size`` are busy."""
        return sum(1 for waiter in self._waiters if not waiter.done())

    async def request(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | AsyncIterator[bytes] | None,
        *,
        fresh: bool = False,
    ) -> UpstreamResponse:
        """Send one request; returns once the response's status and headers arrived.

        ``headers`` must not carry Content-Length or Transfer-Encoding: the client frames
        the body itself (Content-Length for bytes, chunked for an iterator). ``fresh``:
        close the idle connections and send on a new one (a retry after a pooled
        connection turned out dead: when the upstream died, so did its siblings). Call
        :meth:`UpstreamResponse.release` when done with the response.
        """
        if fresh:
            self._close_idle()
        connection = await self._acquire()
        response = UpstreamResponse(connection)
        head = connection.begin(method, response)
        try:
            if body is None or isinstance(body, bytes):
                connection.write(_head(method, target, headers, body) + (body or b""))
            else:
                head_bytes = _head(method, target, headers, None, True)
                await _send_stream(connection, head_bytes, body, self.limits.body_idle)
            connection.sent()
            return await head
        except BaseException:
            if head.done() and not head.cancelled():
                head.exception()  # retrieved: the caller gets the error that stopped us
            response._fail(Disconnected("the exchange was abandoned", before_response=False))
            response.release()
            raise

    async def close(self) -> None:
        """Close idle connections now and busy ones when they are released."""
        self._closed = True
        self._close_idle()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectFailed("the upstream's pool was closed"))

    # -- the pool -----------------------------------------------------------------------

    def _close_idle(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
            self._open -= 1

    async def _acquire(self) -> _Connection:
        if self._closed:
            raise ConnectFailed("the upstream's pool is closed")
        now = self.loop.time()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < self.limits.keepalive:
                return connection
            connection.close()
            self._open -= 1
        if self._open >= self.limits.pool_size:
            handed = await self._wait_for_connection()
            if handed is not None:
                return handed
        else:
            self._open += 1
        try:
            return await self._connect()
        except BaseException:
            self._open -= 1
            self._wake_one(None)
            raise

    async def _wait_for_connection(self) -> _Connection | None:
        """Wait for a released connection, or None: a free slot to connect in."""
        waiter: asyncio.Future[_Connection | None] = self.loop.create_future()
        self._waiters.append(waiter)
        wait = self.limits.pool_wait
        try:
            async with asyncio.timeout(wait):
                return await waiter
        except (asyncio.CancelledError, TimeoutError) as exc:
            if waiter.done() and not waiter.cancelled():  # handed over as we were cancelled
                handed = waiter.result()
                if handed is not None:
                    self._release(handed, True)
                else:
                    self._open -= 1
                    self._wake_one(None)
            if isinstance(exc, TimeoutError):
                raise PoolTimeout(
                    f"all {self.limits.pool_size} connections to {self.host}:{self.port} "
                    f"stayed busy for {wait:g} s"
                ) from exc
            raise

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self.limits.connect):
                _, protocol = await self.loop.create_connection(
                    lambda: _Connection(self), self.host, self.port, ssl=self.ssl
                )
        except TimeoutError as exc:
            raise ConnectFailed(
                f"could not connect to {self.host}:{self.port} in {self.limits.connect:g} s"
            ) from exc
        except OSError as exc:
            raise ConnectFailed(f"could not connect to {self.host}:{self.port}: {exc}") from exc
        return protocol

    def _release(self, connection: _Connection, reusable: bool) -> None:
        if reusable and not self._closed:
            if self._wake_one(connection):
                return
            connection.idle_since = self.loop.time()
            self._idle.append(connection)
            return
        connection.close()
        self._open -= 1
        self._wake_one(None)

    def _wake_one(self, connection: _Connection | None) -> bool:
        """Hand ``connection`` (or a free slot) to the longest waiter; False if none."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                if connection is None:
                    self._open += 1  # the slot passes to the waiter, which connects
                waiter.set_result(connection)
                return True
        return False

    def _forget(self, connection: _Connection) -> None:
        """A connection closed by the upstream while idle leaves the pool."""
        if connection in self._idle:
            self._idle.remove(connection)
            self._open -= 1
            self._wake_one(None)


def _head(
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]],
    body: bytes | None,
    chunked: bool = False,
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1\r\n"]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers)
    if chunked:
        lines.append("Transfer-Encoding: chunked\r\n")
    elif body:
        lines.append(f"Content-Length: {len(body)}\r\n")
    elif method in _EMPTY_BODY_METHODS:
        lines.append("Content-Length: 0\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


async def _send_stream(
    connection: _Connection, head: bytes, body: AsyncIterator[bytes], idle: float | None
) -> None:
    connection.write(head)
    if idle is None:
        async for chunk in body:
            if chunk:
                connection.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                await connection.drain()
        connection.write(b"0\r\n\r\n")
        return
    # Only the wait for the client's next chunk is timed: an upstream slow to read
    # (drain) is the read timeout's business, not the client's.
    loop, chunks = connection.loop, aiter(body)
    try:
        async with asyncio.timeout(None) as deadline:
            while True:
                deadline.reschedule(loop.time() + idle)
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                deadline.reschedule(None)
                if chunk:
                    connection.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                    await connection.drain()
    except TimeoutError as exc:
        raise BodyStalled(f"the request body gave nothing for {idle:g} s") from exc
    connection.write(b"0\r\n\r\n")
