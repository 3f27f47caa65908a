"""Connection limits at the proxy's edge: the settings, the file-descriptor budget, the caps.

:class:`EdgeLimits` is what :class:`strangler_proxy.edge.protocol.EdgeProtocol` enforces
per connection (timeouts, head and request-target sizes); :class:`ConnectionGate` keeps
one process's connection counts (global and per client address) and picks an idle
connection to close when the global cap is reached.

    limits = EdgeLimits.from_config(config)
    cap = default_max_connections()        # from RLIMIT_NOFILE
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

FD_RESERVE_MIN = 128
"""File descriptors a configured cap must leave free (upstream pools, logs, the listener)."""
LINGER_SECONDS = 2.0
"""How long a refused connection is read (and discarded) before it is closed."""
MAX_LINGERING = 256
"""Refused connections lingering at once per process; beyond, they are closed at once."""
REPORT_EVERY = 10.0
"""Seconds between two log lines about refused connections (per limit)."""


def fd_limit() -> int:
    """This process's soft RLIMIT_NOFILE (a large number when unlimited)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def fd_reserve(limit: int) -> int:
    """File descriptors kept for everything but client connections: a quarter, at least 128."""
    return max(FD_RESERVE_MIN, limit // 4)


def default_max_connections(limit: int | None = None) -> int:
    """Client connections per process when not configured: the fd limit less its reserve."""
    limit = fd_limit() if limit is None else limit
    return max(1, limit - fd_reserve(limit))


def check_max_connections(value: int, limit: int | None = None) -> None:
    """Refuse a cap that leaves fewer than :data:`FD_RESERVE_MIN` descriptors for the rest."""
    limit = fd_limit() if limit is None else limit
    if value > limit - FD_RESERVE_MIN:
        raise ValueError(
            f"{value} client connections leave {max(limit - value, 0)} of this process's "
            f"{limit} file descriptors (RLIMIT_NOFILE) for upstream connections, logs and "
            f"the listening socket; at most {max(limit - FD_RESERVE_MIN, 0)} are allowed: "
            "lower max_connections or raise the limit (ulimit -n)"
        )


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """What the edge protocol enforces on every client connection (seconds and bytes)."""

    header_timeout: float = 10.0
    body_idle_timeout: float = 30.0
    idle_timeout: float = 30.0
    max_connections: int = 768
    max_connections_per_client: int = 256
    max_header_bytes: int = 64 * 1024
    max_target_bytes: int = 16 * 1024


class Connection(Protocol):
    """What the gate needs of a client connection."""

    @property
    def evictable_since(self) -> float | None:
        """Its rank for eviction, smallest first (None: it serves a request, never evicted)."""

    def evict(self) -> None:
        """Close it to make room for a new connection."""


class ConnectionGate:
    """One process's admitted client connections, in total and per client address."""

    def __init__(self, limits: EdgeLimits) -> None:
        self.limits = limits
        self.per_client: dict[str, int] = {}
        self.admitted: dict[Connection, str] = {}
        self.lingering = 0
        self.evicted = 0
        self.refused: dict[str, int] = {}
        self._reported: dict[str, tuple[float, int]] = {}
        self.on_refusal: Callable[[str], None] = lambda limit: None
        self.on_eviction: Callable[[], None] = lambda: None

    def admit(self, connection: Connection, client: str) -> str | None:
        """Count ``connection`` in, or the name of the limit that refuses it.

        At the global cap a connection serving no request is closed to make room: the
        one with the smallest :attr:`Connection.evictable_since` (a head still arriving,
        oldest first, then idle ones, the nearest idle deadline first); when every
        connection is busy with a request the new one is refused.
        """
        count = self.per_client.get(client, 0)
        if count >= self.limits.max_connections_per_client:
            return "max_connections_per_client"
        if len(self.admitted) >= self.limits.max_connections and not self._evict_one():
            return "max_connections"
        self.per_client[client] = count + 1
        self.admitted[connection] = client
        return None

    def release(self, connection: Connection) -> None:
        """``connection`` closed (a no-op for one never admitted or already evicted)."""
        client = self.admitted.pop(connection, None)
        if client is None:
            return
        count = self.per_client.get(client, 0) - 1
        if count > 0:
            self.per_client[client] = count
        else:
            self.per_client.pop(client, None)

    def refusal(self, limit: str, now: float) -> int:
        """Count a refusal by ``limit``; how many to report now (0: stay quiet).

        At most one log line per limit every :data:`REPORT_EVERY` seconds: a flood of
        refused connections must not become a flood of log lines.
        """
        total = self.refused[limit] = self.refused.get(limit, 0) + 1
        self.on_refusal(limit)
        last, reported = self._reported.get(limit, (float("-inf"), 0))
        if now - last < REPORT_EVERY:
            return 0
        self._reported[limit] = (now, total)
        return total - reported

    def _evict_one(self) -> bool:
        oldest: Connection | None = None
        since = float("inf")
        for connection in self.admitted:
            idle = connection.evictable_since
            if idle is not None and idle < since:
                oldest, since = connection, idle
        if oldest is None:
            return False
        self.release(oldest)  # counted out now: its own release when it closes is a no-op
        oldest.evict()
        self.evicted += 1
        self.on_eviction()
        return True
