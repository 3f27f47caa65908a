"""Key buckets: how the relay's lock and its partitions split a context's keys.

Every key ``(aggregate_type, aggregate_key)`` falls into one of :data:`LOCK_BUCKETS`
buckets (the first 28 bits of an MD5 of the key, which Python and PostgreSQL compute
alike). The relay lock is one PostgreSQL advisory lock per bucket:

- an applier of some keys (a Celery retry, a service's in-process applier) locks the
  buckets of those keys;
- a partitioned relay worker (``--partitions N``) owns the buckets ``b`` with
  ``b % N == index`` and locks them all before it reads its pending batch;
- the backfill and an unpartitioned relay lock every bucket.

So two appliers of the same key never interleave, whatever their partition counts, and
the workers of different partitions never wait for each other. SQLite has one writer at
a time (``BEGIN IMMEDIATE``) and no partitions.

    Partition(index=0, count=2).buckets   # (0, 2, 4, ..., 30)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection

LOCK_BUCKETS = 32
"""Buckets per context: the most partitions a context can have."""

BUCKET_SQL = (
    "mod(('x' || substr(md5(aggregate_type || '/' || aggregate_key), 1, 7))::bit(28)::int, "
    f"{LOCK_BUCKETS})"
)
"""The bucket of an outbox row, in PostgreSQL (same value as :func:`bucket_of`)."""


class PartitionError(ValueError):
    """A partition setting that cannot work (the message says which and why)."""


def bucket_of(key: tuple[str, str]) -> int:
    """The bucket of ``(aggregate_type, aggregate_key)`` (same value as :data:`BUCKET_SQL`)."""
    digest = hashlib.md5(f"{key[0]}/{key[1]}".encode(), usedforsecurity=False).hexdigest()
    return int(digest[:7], 16) % LOCK_BUCKETS


@dataclass(frozen=True)
class Partition:
    """Worker ``index`` of ``count``: it owns the buckets ``b % count == index``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.count <= LOCK_BUCKETS:
            raise PartitionError(
                f"--partitions must be between 1 and {LOCK_BUCKETS}, not {self.count}"
            )
        if not 0 <= self.index < self.count:
            raise PartitionError(
                f"--partition must be between 0 and {self.count - 1} for {self.count} "
                f"partitions, not {self.index}"
            )

    @property
    def whole(self) -> bool:
        """True for the single partition that owns every key."""
        return self.count == 1

    @property
    def buckets(self) -> tuple[int, ...]:
        return tuple(b for b in range(LOCK_BUCKETS) if b % self.count == self.index)

    def owns(self, key: tuple[str, str]) -> bool:
        return self.whole or bucket_of(key) % self.count == self.index

    def sql_condition(self) -> str:
        """A WHERE condition on ``strangler_outbox`` rows that keeps this partition's keys."""
        return "TRUE" if self.whole else f"mod({BUCKET_SQL}, {self.count}) = {self.index}"

    def __str__(self) -> str:
        return f"partition {self.index + 1} of {self.count}"


WHOLE = Partition()


def lock_buckets(conn: Connection, context: str, buckets: Iterable[int], settings: str) -> None:
    """Take the advisory locks of ``buckets`` (ascending: no deadlock between appliers).

    ``settings`` is appended to the same statement (``set_config`` calls), so the locks
    and the transaction's settings cost one round trip.
    """
    conn.exec_driver_sql(
        "SELECT count(pg_advisory_xact_lock(hashtextextended(%(lock)s || b::text, 0)))"
        f"{settings} FROM unnest(%(buckets)s::int[]) AS b",
        {"lock": f"strangler-relay:{context}:", "buckets": sorted(set(buckets))},
    )
