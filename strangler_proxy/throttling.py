"""Failed authentication, throttled per client address: a token bucket per address.

Each address may fail ``burst`` times in a row; a spent attempt comes back every
``60 / per_minute`` seconds. An attempt takes a token *before* its credential is
checked, so parallel guesses count at once rather than after their answers, and gives
it back when the credential was right. An address without a token gets
:class:`~strangler_proxy.edge.errors.TooManyAttempts` (429 with ``Retry-After``) and its
credential is not checked at all. At most ``max_clients`` addresses are tracked (least
recently seen dropped first), and an address whose bucket is full again is forgotten,
so memory stays bounded whatever the addresses.

    throttle = AuthThrottle(per_minute=5, burst=5, max_clients=10_000)
    throttle.take(client)          # raises TooManyAttempts
    if credential_ok:
        throttle.give_back(client)

One event loop (no lock). Each process (worker, replica) keeps its own buckets: with N
processes behind one address an attacker gets at most N times the rate.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from strangler_proxy.edge.errors import TooManyAttempts

__all__ = ["AuthThrottle"]


class AuthThrottle:
    """Token buckets of failed-authentication attempts, one per client address."""

    def __init__(
        self,
        *,
        per_minute: float = 5.0,
        burst: int = 5,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("per_minute > 0, burst >= 1 and max_clients >= 1 are required")
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, client: str) -> None:
        """Spend one attempt of ``client``; :class:`TooManyAttempts` when none is left."""
        now = self.clock()
        tokens = self._tokens(client, now)
        if tokens < 1.0:
            raise TooManyAttempts(retry_after=math.ceil((1.0 - tokens) / self.rate))
        self._store(client, tokens - 1.0, now)

    def give_back(self, client: str) -> None:
        """The attempt ``take`` spent succeeded: it does not count."""
        now = self.clock()
        tokens = min(self.burst, self._tokens(client, now) + 1.0)
        if tokens >= self.burst:
            self._buckets.pop(client, None)
        else:
            self._store(client, tokens, now)

    def _tokens(self, client: str, now: float) -> float:
        found = self._buckets.get(client)
        if found is None:
            return self.burst
        tokens, at = found
        return min(self.burst, tokens + (now - at) * self.rate)

    def _store(self, client: str, tokens: float, now: float) -> None:
        self._buckets[client] = (tokens, now)
        self._buckets.move_to_end(client)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
