"""Frames between the proxy and its mirror sidecar: a 4-byte length, then a pickle.

Both ends are this package, started together from the same interpreter and code, so
pickle (C-fast, no schema to keep in step) is safe here; the socket is a private
``socketpair`` that nothing else can write to.

Proxy to sidecar:

- ``("route", key, ShadowRoute)``: the route a following job's ``key`` stands for;
- ``("job", key, method, path, headers, body, status, response_headers, response_body)``;
- ``("drops", {(route, context): n})``: copies the proxy dropped (for the store);
- ``("sheds", {(route, context): n})``: copies the proxy's load shedder kept back.

Sidecar to proxy:

- ``("counts", {(route, outcome): n}, queue_depth)``: outcome deltas since the last one.

    frame = encode(("drops", {("detail", "catalog"): 3}))
    reader = FrameReader()
    messages = reader.feed(frame)      # [("drops", {...})]
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

__all__ = ["FINAL_OUTCOMES", "SCHEDULING", "FrameReader", "encode"]

_LENGTH = struct.Struct(">I")
# Scheduling classes the sidecar can run in (its ``--sched``).
SCHEDULING = ("idle", "normal")
# Outcomes after which the sidecar holds no more of a copy (what "in flight" ends with).
FINAL_OUTCOMES = frozenset({"matched", "mismatched", "shadow_error", "dropped"})


def encode(message: tuple[Any, ...]) -> bytes:
    """One frame: the length of the pickled message, then the message."""
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(payload)) + payload


class FrameReader:
    """Reassembles frames from a byte stream that may split or join them anywhere."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[Any, ...]]:
        """The messages completed by ``data`` (an incomplete tail is kept for later)."""
        self._buffer += data
        messages: list[tuple[Any, ...]] = []
        start = 0
        while len(self._buffer) - start >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(self._buffer, start)
            end = start + _LENGTH.size + size
            if end > len(self._buffer):
                break
            messages.append(pickle.loads(self._buffer[start + _LENGTH.size : end]))
            start = end
        del self._buffer[:start]
        return messages
