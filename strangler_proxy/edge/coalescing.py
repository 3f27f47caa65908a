"""A client transport that sends what one event-loop step wrote in one ``send``.

uvicorn writes a response's head when the app sends ``http.response.start`` and its
body on ``http.response.body``: two writes, so two ``send`` system calls and two TCP
segments for every small answer, and two reads for the client. The proxy's answers
are almost all one head and one body written in the same step, so
:class:`CoalescingTransport` keeps the writes of a step and sends them together at the
end of it (``call_soon``). Nothing waits longer than that step: a head whose body
comes later (a streamed upstream) goes out alone at its end.

Closing, ``write_eof`` and ``abort`` keep their meaning: the first two send what is
held first; ``abort`` drops it with the connection. A step that writes more than
:data:`FLUSH_BYTES` sends at once, so what is held stays small.

    transport = CoalescingTransport(transport, loop)   # in Protocol.connection_made
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["FLUSH_BYTES", "CoalescingTransport"]

FLUSH_BYTES = 64 * 1024
"""Writes held in one step past this size are sent at once."""


class CoalescingTransport:
    """Wraps a connection's transport; every other method is the wrapped one's."""

    __slots__ = ("_held", "_held_bytes", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] | None = None
        self._held_bytes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Hold ``data`` until the end of this loop step (or send now, past the cap)."""
        if not data:
            return
        held = self._held
        if held is None:
            self._held = held = []
            self._loop.call_soon(self.flush)
        held.append(bytes(data))
        self._held_bytes += len(data)
        if self._held_bytes > FLUSH_BYTES:
            self.flush()

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Send what is held, as one write (a no-op when nothing is, or it is closed)."""
        held = self._held
        if held is None:
            return
        self._held = None
        self._held_bytes = 0
        if self._transport.is_closing():
            return
        self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def get_write_buffer_size(self) -> int:
        return self._held_bytes + self._transport.get_write_buffer_size()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held = None
        self._held_bytes = 0
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
