"""The forwarding client against real loopback servers that answer byte for byte."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from strangler_proxy.upstream._client import (
    BodyStalled,
    ClientLimits,
    ConnectFailed,
    Disconnected,
    PoolTimeout,
    ProtocolError,
    UpstreamClient,
)

pytestmark = pytest.mark.anyio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class RawServer:
    """A loopback server whose handler writes raw bytes; counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.active = 0
        self.most_active = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.active -= 1
            writer.close()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request's head and its body (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return head, body
            body += chunk[:-2]
    for line in lower.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return head, await reader.readexactly(int(line.split(b":")[1]))
    return head, b""


def answering(*responses: bytes, then_close: bool = False) -> Handler:
    """A handler answering each request on a connection with the next response."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for response in responses:
            await read_request(reader)
            writer.write(response)
            await writer.drain()
        if not then_close:
            while await reader.read(1024):
                pass

    return handler


async def answers_slowly(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Every request on the connection answered OK after 50 ms."""
    while True:
        await read_request(reader)
        await asyncio.sleep(0.05)
        writer.write(OK)


async def fetch(client: UpstreamClient, method: str = "GET", body: bytes | None = None) -> bytes:
    response = await client.request(method, "/x", [("Host", "test")], body)
    try:
        return await response.read()
    finally:
        response.release()


async def test_keep_alive_reuses_one_connection() -> None:
    async with RawServer(answering(OK, OK, OK)) as server:
        client = UpstreamClient("127.0.0.1", server.port)
        assert [await fetch(client) for _ in range(3)] == [b"ok"] * 3
        assert server.connections == 1
        assert client.open_connections == 1 and client.idle_connections == 1
        await client.close()


@pytest.mark.parametrize(
    ("response", "body"),
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            b"abcde",
        ),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", b""),
        (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK, b"ok"),
    ],
    ids=["chunked", "204", "304-with-length", "103-then-200"],
)
async def test_framing_and_reuse(response: bytes, body: bytes) -> None:
    async with RawServer(answering(response, OK)) as server:
        client = UpstreamClient("127.0.0.1", server.port)
        assert await fetch(client) == body
        assert await fetch(client) == b"ok"  # the connection was left at a message boundary
        assert server.connections == 1
        await client.close()


async def test_head_answer_has_no_body_and_the_connection_is_reused() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    async with RawServer(answering(head, OK)) as server:
        client = UpstreamClient("127.0.0.1", server.port)
        response = await client.request("HEAD", "/x", [("Host", "test")], None)
        assert response.content_length == 1000
        assert await response.read() == b""
        response.release()
        assert await fetch(client) == b"ok"
        assert server.connections == 1
        await client.close()


async def test_body_until_close_and_connection_close() -> None:
    until_eof = b"HTTP/1.1 200 OK\r\n\r\nall of it"
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    async with RawServer(answering(until_eof, then_close=True)) as server:
        client = UpstreamClient("127.0.0.1", server.port)
        assert await fetch(client) == b"all of it"
        assert client.open_connections == 0
        await client.close()
    async with RawServer(answering(closing, then_close=True)) as server:
        client = UpstreamClient("127.0.0.1", server.port)
        assert await fetch(client) == b"ok"
        assert await fetch(client) == b"ok"
        assert server.connections == 2
        await client.close()


async def test_headers_and_bodies_are_framed_by_the_client() -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            seen.append(await read_request(reader))
            writer.write(OK)

    async def stream() -> AsyncIterator[bytes]:
        for part in (b"one,", b"", b"two"):
            yield part

    async with RawServer(handler) as server:
        client = UpstreamClient("127.0.0.1", server.port)
        await fetch(client, "POST", b"payload")
        await fetch(client, "POST", None)
        response = await client.request("PUT", "/y?q=1", [("Host", "h"), ("X-A", "b")], stream())
        await response.read()
        response.release()
        await client.close()
    (post_head, post_body), (empty_head, _), (put_head, put_body) = seen
    assert post_head.startswith(b"POST /x HTTP/1.1\r\n")
    assert b"Content-Length: 7\r\n" in post_head and post_body == b"payload"
    assert b"Content-Length: 0\r\n" in empty_head
    assert put_head.startswith(b"PUT /y?q=1 HTTP/1.1\r\nHost: h\r\nX-A: b\r\n")
    assert b"Transfer-Encoding: chunked" in put_head and put_body == b"one,two"


async def test_large_body_streams_with_backpressure() -> None:
    size = 8 * 1024 * 1024
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size
    async with RawServer(answering(head + b"x" * size, OK)) as server:
        client = UpstreamClient("127.0.0.1", server.port)
        response = await client.request("GET", "/big", [("Host", "t")], None)
        received = 0
        async for chunk in response.chunks():
            assert len(chunk) <= 256 * 1024
            received += len(chunk)
            await asyncio.sleep(0)  # a slow reader: reading from the upstream pauses
        response.release()
        assert received == size
        assert await fetch(client) == b"ok"
        await client.close()


async def test_connect_refused_is_connect_failed() -> None:
    async with RawServer(answering()) as server:
        port = server.port
    client = UpstreamClient("127.0.0.1", port, ClientLimits(connect=1))
    with pytest.raises(ConnectFailed, match="could not connect"):
        await fetch(client)
    assert client.open_connections == 0
    await client.close()


async def test_read_timeouts_before_and_during_the_body() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()

    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await reader.read()

    for handler, step in ((silent, "head"), (stalls, "body")):
        async with RawServer(handler) as server:
            client = UpstreamClient("127.0.0.1", server.port, ClientLimits(read=0.3))
            with pytest.raises(TimeoutError, match="no data from the upstream"):
                await fetch(client)
            assert client.open_connections == 0, step
            await client.close()


async def test_connection_closed_before_an_answer_is_disconnected() -> None:
    async def hangs_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async def cuts_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()

    async with RawServer(hangs_up) as server:
        client = UpstreamClient("127.0.0.1", server.port)
        with pytest.raises(Disconnected) as before:
            await fetch(client)
        assert before.value.before_response
        await client.close()
    async with RawServer(cuts_body) as server:
        client = UpstreamClient("127.0.0.1", server.port)
        with pytest.raises(Disconnected) as during:
            await fetch(client)
        assert not during.value.before_response
        assert client.open_connections == 0
        await client.close()


async def test_idle_connection_closed_by_the_upstream_leaves_the_pool() -> None:
    async with RawServer(answering(OK, then_close=True)) as server:
        client = UpstreamClient("127.0.0.1", server.port)
        assert await fetch(client) == b"ok"
        for _ in range(200):  # until the close reaches the client's loop
            if client.open_connections == 0:
                break
            await asyncio.sleep(0.01)
        assert client.open_connections == 0 and client.idle_connections == 0
        assert await fetch(client) == b"ok"
        assert server.connections == 2
        await client.close()


async def test_malformed_answer_is_a_protocol_error() -> None:
    async with RawServer(answering(b"SMTP ready\r\n\r\n")) as server:
        client = UpstreamClient("127.0.0.1", server.port)
        with pytest.raises(ProtocolError, match="malformed response"):
            await fetch(client)
        assert client.open_connections == 0
        await client.close()


async def test_pool_size_bounds_connections_and_waiters_get_them() -> None:
    async with RawServer(answers_slowly) as server:
        client = UpstreamClient("127.0.0.1", server.port, ClientLimits(pool_size=2))
        waiting = asyncio.ensure_future(fetch(client))
        bodies = await asyncio.gather(*(fetch(client) for _ in range(6)))
        assert bodies == [b"ok"] * 6 and await waiting == b"ok"
        assert server.most_active == 2 and client.open_connections == 2
        # A waiter cancelled while it waits gives its place up: nothing leaks.
        busy = [asyncio.ensure_future(fetch(client)) for _ in range(2)]
        await asyncio.sleep(0.01)
        cancelled = asyncio.ensure_future(fetch(client))
        await asyncio.sleep(0.01)
        cancelled.cancel()
        assert await asyncio.gather(*busy) == [b"ok", b"ok"]
        assert await fetch(client) == b"ok"
        assert client.open_connections == 2
        await client.close()


async def test_fresh_request_closes_idle_connections_and_opens_a_new_one() -> None:
    async with RawServer(answers_slowly) as server:
        client = UpstreamClient("127.0.0.1", server.port)
        await asyncio.gather(fetch(client), fetch(client))
        assert client.idle_connections == 2 and server.connections == 2
        response = await client.request("GET", "/x", [("Host", "t")], None, fresh=True)
        assert await response.read() == b"ok"
        response.release()
        assert server.connections == 3
        assert client.open_connections == 1 and client.idle_connections == 1
        await client.close()


async def test_a_request_waits_for_a_pooled_connection_at_most_pool_wait() -> None:
    release = asyncio.Event()

    async def answers_when_released(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            await read_request(reader)
            await release.wait()
            writer.write(OK)

    async with RawServer(answers_when_released) as server:
        limits = ClientLimits(pool_size=1, pool_wait=0.2)
        client = UpstreamClient("127.0.0.1", server.port, limits)
        holding = asyncio.ensure_future(fetch(client))
        await wait_for(lambda: server.active == 1)
        with pytest.raises(PoolTimeout, match=r"busy for 0\.2 s"):
            await fetch(client)
        release.set()
        assert await holding == b"ok"
        assert await fetch(client) == b"ok"  # the waiter that gave up left nothing behind
        assert client.open_connections == 1 and server.connections == 1
        await client.close()


async def test_a_stalled_streamed_body_is_cut_and_its_connection_discarded() -> None:
    stall = asyncio.Event()
    received: list[bytes] = []

    async def reads_the_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, body = await read_request(reader)  # never completes: the body stalls
        received.append(body)

    async def stalling_body() -> AsyncIterator[bytes]:
        yield b"first part"
        await stall.wait()  # the client went quiet
        yield b"never sent"

    async with RawServer(reads_the_body) as server:
        client = UpstreamClient("127.0.0.1", server.port, ClientLimits(body_idle=0.2))
        with pytest.raises(BodyStalled, match=r"nothing for 0\.2 s"):
            await client.request("POST", "/upload", [("Host", "t")], stalling_body())
        assert client.open_connections == 0 and client.idle_connections == 0
        await wait_for(lambda: server.active == 0)  # the upstream saw the connection close
        assert received == []  # it never got a complete (truncated) request
        await client.close()


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)
