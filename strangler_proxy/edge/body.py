"""The client's request body: read whole when small, streamed otherwise, always capped.

A chunked body is read ahead up to the same threshold first, so a small one is whole,
and its framing checked, before its head goes to an upstream.

body = RequestBody(receive, declared=content_length, chunked=False, limit=10 << 20)
await body.prefetch(64 << 10)
data = await body.read() if body.small(64 << 10) else body.stream()
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from strangler_proxy.edge.errors import BodyTooLarge

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]


class ClientGone(Exception):
    """The client disconnected before its body was read."""


class RequestBody:
    """One request's body; read at most once."""

    def __init__(self, receive: Receive, *, declared: int | None, chunked: bool, limit: int):
        if declared is not None and declared > limit:
            raise BodyTooLarge(f"body of {declared} bytes exceeds the limit of {limit}")
        self.receive = receive
        self.declared = declared
        self.chunked = chunked
        self.limit = limit
        self.started = False
        self.failure: Exception | None = None
        self._ahead: list[bytes] = []
        self._seen = 0
        self._complete = False

    @property
    def empty(self) -> bool:
        return not self.chunked and not self.declared

    def small(self, threshold: int) -> bool:
        if self.chunked:
            return self._complete
        return self.declared is not None and self.declared <= threshold

    async def prefetch(self, threshold: int) -> None:
        """Read a chunked body ahead until it ends or passes ``threshold`` bytes."""
        ahead = 0
        while self.chunked and not self._complete and ahead <= threshold:
            chunk = await self._next()
            ahead += len(chunk)
            self._ahead.append(chunk)

    async def read(self) -> bytes:
        """The whole body."""
        return b"".join([chunk async for chunk in self.stream()])

    async def stream(self) -> AsyncIterator[bytes]:
        """The body chunk by chunk; remembers why it stopped early in :attr:`failure`."""
        self.started = True
        ahead, self._ahead = self._ahead, []
        for chunk in ahead:
            if chunk:
                yield chunk
        while not self._complete:
            chunk = await self._next()
            if chunk:
                yield chunk

    async def _next(self) -> bytes:
        message = await self.receive()
        if message["type"] == "http.disconnect":
            self.failure = ClientGone("client disconnected while sending the body")
            raise self.failure
        chunk: bytes = message.get("body", b"")
        self._seen += len(chunk)
        if self._seen > self.limit:
            self.failure = BodyTooLarge(f"body exceeds the limit of {self.limit} bytes")
            raise self.failure
        self._complete = not message.get("more_body", False)
        return chunk
