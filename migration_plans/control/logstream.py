"""Merge the log files of several processes into one prefixed stream (``strangler up``).

with LogStream(sys.stdout) as stream:
    stream.follow("monolith", Path("var/log/monolith.log"))
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType
from typing import TextIO

_COLOURS = ("36", "33", "35", "32", "34", "31", "96", "93")


class LogStream:
    """Follows log files in background threads and writes ``name | line`` to ``out``."""

    def __init__(self, out: TextIO, *, colour: bool = False, poll_interval: float = 0.1) -> None:
        self.out = out
        self.colour = colour
        self.poll_interval = poll_interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._width = 8

    def follow(self, name: str, path: Path) -> None:
        """Start copying new lines of ``path`` (from its beginning) to the stream."""
        self._width = max(self._width, len(name))
        prefix = self._prefix(name, len(self._threads))
        thread = threading.Thread(
            target=self._pump, args=(prefix, path), name=f"log-{name}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _prefix(self, name: str, index: int) -> str:
        if not self.colour:
            return f"{name:<{self._width}} | "
        code = _COLOURS[index % len(_COLOURS)]
        return f"\x1b[{code}m{name:<{self._width}}\x1b[0m | "

    def _pump(self, prefix: str, path: Path) -> None:
        while not path.exists() and not self._stop.wait(self.poll_interval):
            pass
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            pending = ""
            while True:
                chunk = handle.readline()
                if chunk:
                    pending += chunk
                    if pending.endswith("\n"):
                        self._write(prefix + pending)
                        pending = ""
                    continue
                if self._stop.wait(self.poll_interval):
                    if pending:
                        self._write(prefix + pending + "\n")
                    return

    def _write(self, text: str) -> None:
        with self._lock:
            self.out.write(text)
            self.out.flush()

    def close(self) -> None:
        """Flush what has been written so far and stop following."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> LogStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
