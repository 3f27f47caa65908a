"""The client transport sends what one loop step wrote as one write, and loses nothing."""

from __future__ import annotations

import asyncio
from typing import Any

from strangler_proxy.edge.coalescing import FLUSH_BYTES, CoalescingTransport


class RecordingTransport(asyncio.Transport):
    """Records each write; closing and aborting are flags."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.eof = False

    def write(self, data: Any) -> None:
        assert not self.closed, "write after close"
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def write_eof(self) -> None:
        self.eof = True

    def can_write_eof(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        return 0


async def _next_step() -> None:
    await asyncio.sleep(0)


def test_head_and_body_written_in_one_step_leave_as_one_write() -> None:
    async def scenario() -> list[bytes]:
        raw = RecordingTransport()
        transport = CoalescingTransport(raw, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        transport.write(b"{}")
        assert raw.writes == []  # held until the end of the step
        assert transport.get_write_buffer_size() == 40
        await _next_step()
        return raw.writes

    assert asyncio.run(scenario()) == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]


def test_a_head_whose_body_comes_later_is_not_held_past_its_step() -> None:
    async def scenario() -> list[bytes]:
        raw = RecordingTransport()
        transport = CoalescingTransport(raw, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        await _next_step()
        assert raw.writes == [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"]
        transport.write(b"2\r\n{}\r\n")
        await _next_step()
        return raw.writes

    assert asyncio.run(scenario())[1:] == [b"2\r\n{}\r\n"]


def test_close_and_write_eof_send_what_is_held_first() -> None:
    async def scenario() -> tuple[RecordingTransport, RecordingTransport]:
        loop = asyncio.get_running_loop()
        closing, ending = RecordingTransport(), RecordingTransport()
        first = CoalescingTransport(closing, loop)
        first.write(b"answer")
        first.close()
        second = CoalescingTransport(ending, loop)
        second.write(b"refusal")
        second.write_eof()
        await _next_step()  # the scheduled flush finds nothing left: no second write
        return closing, ending

    closing, ending = asyncio.run(scenario())
    assert closing.writes == [b"answer"] and closing.closed
    assert ending.writes == [b"refusal"] and ending.eof


def test_abort_drops_what_is_held() -> None:
    async def scenario() -> RecordingTransport:
        raw = RecordingTransport()
        transport = CoalescingTransport(raw, asyncio.get_running_loop())
        transport.write(b"never sent")
        transport.abort()
        await _next_step()
        return raw

    raw = asyncio.run(scenario())
    assert raw.writes == [] and raw.aborted


def test_a_large_step_is_sent_at_once_so_little_is_held() -> None:
    async def scenario() -> list[bytes]:
        raw = RecordingTransport()
        transport = CoalescingTransport(raw, asyncio.get_running_loop())
        chunk = b"x" * (FLUSH_BYTES // 2)
        transport.write(chunk)
        transport.write(chunk)
        transport.write(b"y")  # past the cap: everything held so far leaves now
        held = list(raw.writes)
        assert transport.get_write_buffer_size() == 0
        await _next_step()
        return held

    assert asyncio.run(scenario()) == [b"x" * FLUSH_BYTES + b"y"]


def test_writes_to_a_closed_connection_are_dropped_not_raised() -> None:
    async def scenario() -> RecordingTransport:
        raw = RecordingTransport()
        transport = CoalescingTransport(raw, asyncio.get_running_loop())
        transport.write(b"late")
        raw.closed = True  # the client went away within the step
        await _next_step()
        return raw

    assert asyncio.run(scenario()).writes == []


def test_other_transport_methods_are_the_wrapped_ones() -> None:
    async def scenario() -> bool:
        raw = RecordingTransport()
        return CoalescingTransport(raw, asyncio.get_running_loop()).can_write_eof()

    assert asyncio.run(scenario()) is True
