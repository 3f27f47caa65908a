"""The client's request body: read whole when small, streamed otherwise, always capped.

body = RequestBody(receive, declared=content_length, chunked=False, limit=10 << 20)
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

    @property
    def empty(self) -> bool:
        return not self.chunked and not self.declared

    def small(self, threshold: int) -> bool:
        return not self.chunked and self.declared is not None and self.declared <= threshold

    async def read(self) -> bytes:
        """The whole body."""
        return b"".join([chunk async for chunk in self.stream()])

    async def stream(self) -> AsyncIterator[bytes]:
        """The body chunk by chunk; remembers why it stopped early in :attr:`failure`."""
        self.started = True
        seen = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.failure = ClientGone("client disconnected while sending the body")
                raise self.failure
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                self.failure = BodyTooLarge(f"body exceeds the limit of {self.limit} bytes")
                raise self.failure
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return
