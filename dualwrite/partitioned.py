"""``strangler dualwrite relay CONTEXT --partitions N``: N relay processes, one per partition.

Each child runs the ordinary relay loop with ``--partition I`` (it owns the keys of its
buckets, :mod:`dualwrite.partitions`), follows the published phase and acknowledges it
as a replica of its own. The parent only supervises: SIGTERM/SIGINT stop every child;
a child that exits on its own stops the others and the parent exits with its status,
so whatever supervises the relay (``strangler up``, systemd, Kubernetes) restarts the
whole set. On Linux a child also gets SIGTERM when the parent dies without a word.

    PartitionedRelay(argv_for_partition, count=2).run(stop)
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

log = logging.getLogger("dualwrite.partitioned")

STOP_TIMEOUT_S = 15.0
"""How long a child may take to finish its batch after SIGTERM before it is killed."""

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent process dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class PartitionedRelay:
    """Starts and supervises one relay process per partition."""

    def __init__(self, argv_for: Callable[[int], list[str]], count: int) -> None:
        self.argv_for = argv_for
        self.count = count
        self.children: list[subprocess.Popen[bytes]] = []

    def run(self, stop: threading.Event) -> int:
        """Run until ``stop`` or until a child exits; returns the exit status to use."""
        status = 0
        try:
            for index in range(self.count):
                self.children.append(
                    subprocess.Popen(self.argv_for(index), preexec_fn=_die_with_parent)
                )
            log.info("relay partitions started: %d processes", self.count)
            while not stop.wait(0.5):
                exited = [(i, c) for i, c in enumerate(self.children) if c.poll() is not None]
                if exited:
                    index, child = exited[0]
                    status = child.returncode or 1
                    log.error(
                        "relay partition %d of %d exited with status %s; stopping the others",
                        index + 1,
                        self.count,
                        child.returncode,
                    )
                    break
        finally:
            self._stop_children()
        return status

    def _stop_children(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.terminate()
        for child in self.children:
            try:
                child.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
