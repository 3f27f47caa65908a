"""The relay: applies one side's outbox events to the other side's tables, exactly once in effect.

For a batch of events (oldest first) of one direction:

1. A monolith transaction takes the context's relay lock (PostgreSQL advisory lock;
   SQLite's ``BEGIN IMMEDIATE`` is one already). Every applier (the relay loop, the
   in-process applier of a service, Celery retries) holds it, so the two directions
   and the retries of one key never interleave.
2. Under the lock the events still unapplied are re-read; in the target's transaction
   each is checked against ``strangler_applied_event`` (the version guard: an event
   whose id is not above the key's last applied id changes nothing, so redelivery and
   out-of-order delivery are harmless) and against the source of truth (dual_write:
   the monolith, split: the service): an event from the other side is superseded when
   the truth has unrelayed changes of the same row, and an event from the truth
   supersedes the other side's unrelayed ones.
3. Rows are written through the field mapping; writes into the monolith are marked
   as the relay's, so the capture triggers skip them (no ping-pong).
4. The events are marked applied on the source side, committed asynchronously (a mark
   lost in a crash only redelivers its event, which the guard absorbs).

Rows are found by every key column (composite keys; text and uuid keys read back from
the event's key text); id-map pairs translate keys through the service's id map, a
split table's pairs write only their own columns, copied columns follow their source
(:mod:`dualwrite.shapes`).

The relay loop's pass (:meth:`Relay.apply_next`) reads the pending batch under the lock
and folds settings into the lock statement: about ten round trips per batch.

A failed apply changes nothing: an error of a statement is :class:`ApplyFailed` naming
its event; one of the transaction as a whole (a deferred constraint or a serialization
failure at COMMIT) is :class:`CommitFailed`, and :meth:`Relay.apply_pinpointed` retries
its events one by one to find the one to blame. That event waits for a retry, then is
dead-lettered; either way it holds back its key's later events (:data:`BLOCKING`), and
no other key's.

    relay = Relay(RelaySettings.from_env("catalog"))
    relay.apply_next(Direction.MONOLITH_TO_SERVICE)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    MetaData,
    Table,
    bindparam,
    delete,
    func,
    insert,
    inspect,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from dualwrite import setwrites
from dualwrite.capture import PG_RELAY_ORIGIN, relay_origin
from dualwrite.config import Direction, RelaySettings
from dualwrite.engines import relay_engine
from dualwrite.events import Applied, Event, Outcome
from dualwrite.exceptions import (
    ApplyFailed,
    CommitFailed,
    DualwriteError,
    StoreUnavailable,
    is_unavailable,
)
from dualwrite.metrics import EVENTS, FAILURES, LAG
from dualwrite.outbox import EVENT_COLUMNS
from dualwrite.partitions import LOCK_BUCKETS, bucket_of, lock_buckets
from dualwrite.schema import applied_table, backfill_table, dead_letter_table
from dualwrite.shapes import (
    Key,
    KeyTranslator,
    SplitRowMissing,
    bindable,
    check_id_map_partitions,
    json_columns,
    json_floats,
    missing_required,
    refresh_copies,
    split_pairs,
    split_row_missing,
)
from migration_plans.core.keys import Side as KeySide
from migration_plans.core.mapping import ContextMapping, TableMapping
from migration_plans.core.outbox import OUTBOX_TABLE, EventStatus, outbox_table
from migration_plans.core.phase import Phase
from migration_plans.core.settings import mapping_for

log = logging.getLogger("dualwrite.relay")

UNAPPLIED = (EventStatus.PENDING.value, EventStatus.IN_FLIGHT.value)
SUPERSEDED = "superseded"


def relay_lock(
    conn: Connection,
    context: str,
    *,
    buckets: Iterable[int] | None = None,
    relay_writes: bool = False,
    async_commit: bool = False,
) -> None:
    """Take the relay lock of ``buckets`` of the context (default: all) for ``conn``'s
    transaction (a monolith connection). See :mod:`dualwrite.partitions`.

    PostgreSQL: advisory locks; SQLite: the transaction's ``BEGIN IMMEDIATE`` already is one.
    On PostgreSQL the same statement (one round trip) can also mark the transaction's
    writes as the relay's (``relay_writes``: the capture triggers skip them) and let it
    commit asynchronously (``async_commit``: only for transactions that write nothing
    but outbox marks).
    """
    if conn.dialect.name != "postgresql":
        return
    settings = ""
    if relay_writes:
        settings += f", {PG_RELAY_ORIGIN}"
    if async_commit:
        settings += ", set_config('synchronous_commit', 'off', true)"
    lock_buckets(conn, context, range(LOCK_BUCKETS) if buckets is None else buckets, settings)


_UPSERTS: dict[tuple[str, int, tuple[str, ...], tuple[str, ...]], Any] = {}


def _upsert_statement(
    dialect_name: str, table: Table, columns: tuple[str, ...], keys: list[str]
) -> Any:
    cache_key = (dialect_name, id(table), columns, tuple(keys))
    statement = _UPSERTS.get(cache_key)
    if statement is None:
        dialect = postgresql if dialect_name == "postgresql" else sqlite
        insert_ = dialect.insert(table)
        changing = [name for name in columns if name not in keys]
        if changing:
            excluded = insert_.excluded
            statement = insert_.on_conflict_do_update(
                index_elements=keys, set_={name: excluded[name] for name in changing}
            )
        else:
            statement = insert_.on_conflict_do_nothing(index_elements=keys)
        _UPSERTS[cache_key] = statement
    return statement


def upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: list[str]) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE, on PostgreSQL and SQLite (statement cached)."""
    if not rows:
        return
    statement = _upsert_statement(conn.dialect.name, table, tuple(rows[0]), keys)
    conn.execute(statement, list(rows))


BLOCKING = (EventStatus.IN_FLIGHT.value, EventStatus.DEAD.value)
"""An event waiting for a retry, or dead-lettered, holds back every later event of its key."""

MAX_BLOCKED_KEYS = 1000
"""Beyond this many blocked keys the pending read filters them with a per-row subquery."""

ANALYZE_EVERY_S = 30.0
"""How often at most a relay refreshes an outbox's statistics while a backlog lasts."""

LOGGED_EVENTS = 100
"""Batches up to this size log a line per event (INFO); larger ones one line per batch."""


def _pending_statement() -> Any:
    """Pending events of a context, oldest first, minus keys held back by a blocking event."""
    waiting = outbox_table.alias("waiting")
    blocked = (
        select(waiting.c.id)
        .where(
            waiting.c.context == outbox_table.c.context,
            waiting.c.status.in_(BLOCKING),
            waiting.c.aggregate_type == outbox_table.c.aggregate_type,
            waiting.c.aggregate_key == outbox_table.c.aggregate_key,
        )
        .exists()
    )
    return (
        select(outbox_table)
        .where(
            outbox_table.c.context == bindparam("context"),
            outbox_table.c.status == EventStatus.PENDING.value,
            ~blocked,
        )
        .order_by(outbox_table.c.id)
        .limit(bindparam("limit"))
    )


_PENDING = _pending_statement()

# The relay's other hot statements, built once (building one per call cost about as
# much CPU as running it). Parameters: ctx (the context: "context" names a column),
# keys (a list of (type, key) pairs) and the values.
_KEYS: BindParameter[Any] = bindparam("keys", expanding=True)
_GUARDS = select(
    applied_table.c.aggregate_type, applied_table.c.aggregate_key, applied_table.c.last_event_id
).where(
    applied_table.c.context == bindparam("ctx"),
    tuple_(applied_table.c.aggregate_type, applied_table.c.aggregate_key).in_(_KEYS),
)
_UNAPPLIED_OF_KEYS = (
    outbox_table.c.context == bindparam("ctx"),
    outbox_table.c.status.in_(UNAPPLIED),
    tuple_(outbox_table.c.aggregate_type, outbox_table.c.aggregate_key).in_(_KEYS),
)
_OWN_UNAPPLIED = (
    select(outbox_table.c.aggregate_type, outbox_table.c.aggregate_key)
    .where(*_UNAPPLIED_OF_KEYS)
    .distinct()
)
_SUPERSEDE = (
    update(outbox_table)
    .where(*_UNAPPLIED_OF_KEYS)
    .values(status=SUPERSEDED, applied_at=bindparam("now"), last_error=bindparam("reason"))
)
_MARK = (
    update(outbox_table)
    .where(
        outbox_table.c.id.in_(bindparam("ids", expanding=True)),
        outbox_table.c.status.in_(UNAPPLIED),
    )
    .values(status=bindparam("new_status"), applied_at=bindparam("now"))
)
_ANY_PENDING = select(
    select(outbox_table.c.id)
    .where(
        outbox_table.c.context == bindparam("ctx"),
        outbox_table.c.status == EventStatus.PENDING.value,
    )
    .exists()
)
_BACKFILLING = (
    select(func.count())
    .select_from(backfill_table)
    .where(
        backfill_table.c.context == bindparam("ctx"),
        backfill_table.c.finished_at.is_(None),
    )
)


class Relay:
    """Applies outbox events of one context between the monolith and its service."""

    def __init__(
        self,
        settings: RelaySettings,
        *,
        monolith: Engine | None = None,
        service: Engine | None = None,
        mapping: ContextMapping | None = None,
    ) -> None:
        self.settings = settings
        self.context = settings.context
        self.mapping = mapping or mapping_for(settings.context)
        self.engines = {
            "monolith": monolith or relay_engine(settings.monolith_url),
            "service": service or relay_engine(settings.service_url),
        }
        self._tables: dict[tuple[str, str], Table] = {}
        self._marks: dict[str, Engine] = {}
        self._autocommit: dict[str, Engine] = {}
        self._has_backfill_table = False
        self._analyzed: dict[str, float] = {}
        self.keys = KeyTranslator(self.mapping, self.engines["service"])
        self._split = split_pairs(self.mapping)
        self._pairs = {pair.name: pair for pair in self.mapping.tables}
        self._copies = any(pair.copies for pair in self.mapping.tables)
        self._forget_after_commit: list[Key] = []
        check_id_map_partitions(self.mapping, settings.partition)

    def close(self) -> None:
        for engine in [*self.engines.values(), *self._marks.values()]:
            engine.dispose()

    def use_phase(self, phase: Phase) -> None:
        """Apply as ``phase`` does from the next batch on (its directions, its source of truth).

        The caller makes sure no batch is being applied meanwhile (the relay loop's
        :class:`~dualwrite.live.PhaseGate`; a Celery task switches before it applies).
        """
        if phase is not self.settings.phase:
            self.settings = replace(self.settings, phase=phase)

    # -- reading the outbox -------------------------------------------------------------

    def _events(self, conn: Connection, *conditions: Any, limit: int | None = None) -> list[Event]:
        query = (
            select(outbox_table)
            .where(outbox_table.c.context == self.context, *conditions)
            .order_by(outbox_table.c.id)
        )
        if limit is not None:
            query = query.limit(limit)
        return [Event.from_row(row) for row in conn.execute(query)]

    def pending(self, direction: Direction, limit: int | None = None) -> list[Event]:
        """Oldest pending events, minus keys whose earlier event waits for a retry or is dead."""
        with self._reading(direction.source) as conn:
            return self._pending(conn, limit)

    def _pending(self, conn: Connection, limit: int | None = None) -> list[Event]:
        limit = limit or self.settings.batch_size
        if conn.dialect.name == "postgresql":
            return self._pending_pg(conn, limit)
        rows = conn.execute(_PENDING, {"context": self.context, "limit": limit})
        return [Event.from_row(row) for row in rows]

    def _refresh_statistics(self, side: str) -> None:
        """During a backlog, ANALYZE ``side``'s outbox and guards now and then.

        A bulk change adds thousands of events between two autovacuum runs; with the
        statistics from before it the planner reads a batch by sorting every pending
        event instead of walking the index in order (seen: 140 ms instead of a few).
        Tables another relay (a partition) is analyzing now are left to it; tables the
        relay may not analyze are skipped (logged once).
        """
        now = time.monotonic()
        if now - self._analyzed.get(side, float("-inf")) < ANALYZE_EVERY_S:
            return
        self._analyzed[side] = now
        try:
            with (
                self.engines[side]
                .connect()
                .execution_options(isolation_level="AUTOCOMMIT") as analyze
            ):
                setwrites.analyze_unless_busy(analyze, (OUTBOX_TABLE, applied_table.name))
        except Exception as exc:
            if is_unavailable(exc):
                raise
            log.warning("cannot refresh the %s outbox's statistics: %s", side, exc)
            self._analyzed[side] = float("inf")

    def _pending_pg(self, conn: Connection, limit: int) -> list[Event]:
        """The partition's pending events, oldest first, minus blocked keys: the few keys
        waiting for a retry or dead are read first, so the batch read is one index scan."""
        owned = self.settings.partition.sql_condition()
        blocked = setwrites.blocked_keys(conn, self.context, owned, BLOCKING, MAX_BLOCKED_KEYS + 1)
        if len(blocked) > MAX_BLOCKED_KEYS:
            statement = _PENDING.where(text(owned))
            return [
                Event.from_row(row)
                for row in conn.execute(statement, {"context": self.context, "limit": limit})
            ]
        events = setwrites.pending_events(
            conn,
            self.context,
            owned,
            blocked,
            limit,
            Event.COLUMNS,
        )
        if len(events) >= limit:
            for side in self.engines:
                self._refresh_statistics(side)
        return [Event.from_values(row) for row in events]

    def pending_partitions(self, direction: Direction, count: int) -> set[int]:
        """Which of ``count`` partitions have pending events in ``direction`` (PostgreSQL)."""
        with self._reading(direction.source) as conn:
            return setwrites.pending_partitions(conn, self.context, count, self.settings.batch_size)

    def in_flight(self, direction: Direction) -> list[Event]:
        """Events of this relay's partition waiting for a retry (oldest first)."""
        with self._guarded(direction.source) as conn:
            waiting = self._events(conn, outbox_table.c.status == EventStatus.IN_FLIGHT.value)
        return [event for event in waiting if self.settings.partition.owns(event.key)]

    def unapplied(
        self, conn: Connection, keys: Iterable[tuple[str, str]], upto: int | None = None
    ) -> list[Event]:
        """Unapplied events of ``keys`` (optionally up to id ``upto``), oldest first."""
        conditions: list[ColumnElement[bool]] = [
            outbox_table.c.status.in_(UNAPPLIED),
            tuple_(outbox_table.c.aggregate_type, outbox_table.c.aggregate_key).in_(list(keys)),
        ]
        if upto is not None:
            conditions.append(outbox_table.c.id <= upto)
        return self._events(conn, *conditions)

    # -- applying ------------------------------------------------------------------------

    def apply_pending(self, direction: Direction, limit: int | None = None) -> list[Applied]:
        """Apply the oldest pending batch of ``direction`` (see the module docstring)."""
        events = self.pending(direction, limit)
        return self.apply(direction, events) if events else []

    def apply_next(self, direction: Direction) -> list[Applied]:
        """Apply the oldest pending batch of ``direction``, reading it under the relay lock.

        The relay loop's hot path: one pass, no separate read before the lock (under
        it, the pending batch is exactly the unapplied chain of its keys). Returns []
        when nothing is pending or a backfill holds monolith events back; raises like
        :meth:`apply`.
        """
        return self._applying(direction, lambda: self._apply_locked(direction, None, None))

    def apply(
        self, direction: Direction, events: Sequence[Event], *, whole_chain: bool = False
    ) -> list[Applied]:
        """Apply ``events`` (and unapplied predecessors of their keys) in per-key order.

        Raises :class:`StoreUnavailable` (nothing changed, try later) or
        :class:`ApplyFailed` naming the event that failed (nothing changed either).
        """
        if not events:
            return []
        keys = sorted({event.key for event in events})
        upto = None if whole_chain else max(event.id for event in events)
        return self._applying(direction, lambda: self._apply_locked(direction, keys, upto))

    def apply_each(self, direction: Direction, events: Sequence[Event]) -> list[Applied]:
        """Apply ``events`` one pass each, oldest first (after a :class:`CommitFailed`).

        The :class:`ApplyFailed` it raises names exactly the event that failed; the events
        before it stay applied, the ones after it are not tried.
        """
        results: list[Applied] = []
        for event in sorted(events, key=lambda event: event.id):
            results.extend(self.apply(direction, [event]))
        return results

    def apply_pinpointed(
        self, direction: Direction, events: Sequence[Event], *, whole_chain: bool = False
    ) -> list[Applied]:
        """:meth:`apply`, and when the batch's transaction failed as a whole, :meth:`apply_each`.

        So the :class:`ApplyFailed` raised always names the event to blame, never an
        innocent neighbour of a batch whose COMMIT failed.
        """
        try:
            return self.apply(direction, events, whole_chain=whole_chain)
        except CommitFailed as failure:
            if len(failure.events) < 2:
                raise
            chain = failure.events
        return self.apply_each(direction, chain)

    def _applying(self, direction: Direction, run: Callable[[], list[Applied]]) -> list[Applied]:
        try:
            results = run()
        except (ApplyFailed, StoreUnavailable):
            raise
        except Exception as exc:
            if is_unavailable(exc):
                FAILURES.labels(self.context, direction.value, "unavailable").inc()
                raise StoreUnavailable(str(exc)) from exc
            raise
        self._observe(direction, results)
        return results

    def _chain(
        self, conn: Connection, keys: list[tuple[str, str]] | None, upto: int | None
    ) -> list[Event]:
        """Under the lock: the pending batch (``keys`` None) or the unapplied chain of ``keys``."""
        return self._pending(conn) if keys is None else self.unapplied(conn, keys, upto)

    def _apply_locked(
        self, direction: Direction, keys: list[tuple[str, str]] | None, upto: int | None
    ) -> list[Applied]:
        """One locked pass; round trips are counted here (the relay's lag is made of them)."""
        monolith, service = self.engines["monolith"], self.engines["service"]
        attempt = _Attempt()
        buckets = self.settings.partition.buckets if keys is None else {bucket_of(k) for k in keys}
        if direction is Direction.MONOLITH_TO_SERVICE:
            with monolith.begin() as mconn:
                # This transaction writes only the marks: losing one in a crash redelivers
                # the event, which the guard absorbs, so it may commit asynchronously.
                relay_lock(mconn, self.context, buckets=buckets, async_commit=True)
                attempt.chain = self._chain(mconn, keys, upto)
                if not attempt.chain:
                    return []
                with attempt, service.begin() as sconn:
                    if self._backfill_running(sconn):
                        return []  # monolith events wait until the copy is done
                    results = self._apply_chain(sconn, direction, attempt.chain)
                self._mark(mconn, results)
            return results
        self._forget_after_commit = []
        if keys is None and not self._service_has_pending():
            # Checked before the lock: an idle lane locking the monolith's buckets every
            # poll made the other lane's next batch wait for it.
            return []
        with attempt, monolith.begin() as mconn:
            relay_lock(mconn, self.context, buckets=buckets, relay_writes=True)
            with self._reading("service") as sconn:
                attempt.chain = self._chain(sconn, keys, upto)
            if not attempt.chain:
                return []
            with _origin_marker(mconn, attempt.chain[0].request):
                results = self._apply_chain(mconn, direction, attempt.chain)
        if self._forget_after_commit:
            # The monolith rows are gone (committed): now their map rows may go. A crash
            # before this leaves map rows naming deleted rows, which nothing reads back.
            with service.begin() as sconn:
                self.keys.forget(sconn, direction, self._forget_after_commit)
        with self._marking("service") as sconn:
            self._mark(sconn, results)
        return results

    def _service_has_pending(self) -> bool:
        """Whether the service's outbox holds a pending event of this context (any partition)."""
        with self._reading("service") as conn:
            return bool(conn.execute(_ANY_PENDING, {"ctx": self.context}).scalar_one())

    def _apply_chain(
        self, conn: Connection, direction: Direction, chain: list[Event]
    ) -> list[Applied]:
        """Apply ``chain`` (oldest first) in ``conn``'s transaction; what each event did.

        Events at or below their key's guard are duplicates; events the source of truth
        overrides are superseded; the rest are applied. On PostgreSQL the applied events
        are coalesced per key (the last one's row image or delete is the key's final
        state) and written set-based (:meth:`_write_coalesced`); if that trips over a
        constraint that holds only in commit order, or on SQLite, they are written one
        run at a time in commit order (:meth:`_write_in_order`).
        """
        if not chain:
            return []
        pg = conn.dialect.name == "postgresql"
        if pg:
            last_ids = {event.key: event.id for event in chain}
            keys = list(last_ids)
            guards = setwrites.advance_guards(conn, self.context, last_ids, datetime.now(UTC))
        else:
            keys = list(dict.fromkeys(event.key for event in chain))
            guards = self._guards(conn, keys)
        source_is_truth = direction.source == self.settings.truth
        targets = self.keys.known(direction, keys, conn if direction.target == "service" else None)
        truth_busy = set() if source_is_truth else self._own_unapplied_keys(conn, keys, targets)
        results: list[Applied] = []
        to_apply: list[Event] = []
        for event in chain:
            if guards.get(event.key, 0) >= event.id:
                results.append(Applied(event, Outcome.DUPLICATE))
                continue
            if event.key in truth_busy:
                results.append(Applied(event, Outcome.SUPERSEDED))
            else:
                to_apply.append(event)
                results.append(Applied(event, Outcome.APPLIED))
            guards[event.key] = event.id
        final = {event.key: event for event in to_apply}
        targets.update(self._new_targets(conn, direction, final, targets))
        if not pg or not self._write_coalesced(conn, direction, to_apply, targets):
            self._write_in_order(conn, direction, to_apply, targets)
        if direction.target == "service" and self._copies:
            refresh_copies(conn, self.mapping, self._service_tables(conn), final, targets)
        gone = [key for key in self.keys.mapped(final) if final[key].operation == "delete"]
        if gone and direction.target == "service":
            self.keys.forget(conn, direction, gone)
        elif gone:
            self._forget_after_commit.extend(gone)
        if not pg:  # (PostgreSQL moved them up front: advance_guards)
            moved = [r.event.key for r in results if r.outcome is not Outcome.DUPLICATE]
            self._save_guards(conn, {key: guards[key] for key in moved})
        applied_keys = self._in_target(sorted(final), targets)
        if source_is_truth and applied_keys:
            self._supersede_own(conn, applied_keys, direction)
        return results

    def _in_target(self, keys: Iterable[Key], targets: dict[Key, str]) -> list[Key]:
        """``keys`` as the target's outbox names them (id-map keys translated, or left out
        when the target has no row for them)."""
        translated: list[Key] = []
        for key in keys:
            if key[0] not in self.keys.pairs:
                translated.append(key)
            elif key in targets:
                translated.append((key[0], targets[key]))
        return sorted(translated)

    def _new_targets(
        self, conn: Connection, direction: Direction, final: dict[Key, Event], known: dict[Key, str]
    ) -> dict[Key, str]:
        """Target keys for id-map rows that the batch creates (their final event an upsert)."""
        needed = [
            key
            for key in self.keys.mapped(final)
            if key not in known and final[key].operation != "delete"
        ]
        if not needed:
            return {}
        try:
            if direction.target == "service":
                return self.keys.create_service_keys(conn, needed)
            tables = {
                key[0]: self.table("monolith", self.mapping.table(key[0]), conn) for key in needed
            }
            return self.keys.reserve_monolith_keys(conn, needed, tables)
        except Exception as exc:
            if is_unavailable(exc):
                raise
            raise ApplyFailed(final[needed[0]], exc) from exc

    def _service_tables(self, conn: Connection) -> dict[str, Table]:
        """The reflected service table of every pair, by pair name (copied columns)."""
        return {pair.name: self.table("service", pair, conn) for pair in self.mapping.tables}

    def _write_in_order(
        self, conn: Connection, direction: Direction, events: list[Event], targets: dict[Key, str]
    ) -> None:
        """Write ``events`` in commit order, consecutive same-kind changes one statement each."""
        run = _Run()
        for event in events:
            change = self._change(conn, direction, event, targets)
            if change is None:
                continue
            if not run.accepts(change):
                self._flush(conn, run)
                run = _Run()
            run.add(change)
        self._flush(conn, run)

    def _write_coalesced(
        self, conn: Connection, direction: Direction, events: list[Event], targets: dict[Key, str]
    ) -> bool:
        """PostgreSQL: write each key's final state, one statement per table and kind.

        Upserts go parents first, deletes children first (by the target's foreign keys);
        a split table's update-only rows after the upserts that may create them.
        Runs in a savepoint; False (nothing written) when a statement fails for a reason
        other than an unavailable database, and the caller writes in commit order, which
        names the event to blame if it fails again.
        """
        if not events:
            return True
        final = {event.key: event for event in events}
        groups: dict[_Kind, list[_Change]] = {}
        images: dict[_Kind, _Images] = {}
        tables: dict[str, Table] = {}
        converted: list[Event] = []
        upserts: dict[str, tuple[Table, str] | None] = {}
        for event in final.values():
            pair = event.aggregate_type
            if pair not in upserts:
                upserts[pair] = self._mapped_upsert(conn, direction, pair)
            mapped = None if event.operation == "delete" else upserts[pair]
            if mapped is None or event.payload is None:
                converted.append(event)
                continue
            table, statement = mapped
            tables[table.name] = table
            group: _Kind = (table.name, False, False, (statement,))
            images.setdefault(group, _Images(statement)).payloads.append(event.payload)
        made = [self._change(conn, direction, event, targets) for event in converted]
        for change in made:
            if change is None:
                continue
            shape = tuple(change.row) if change.row is not None else ()
            kind = (change.table.name, change.row is None, bool(change.update_only), shape)
            groups.setdefault(kind, []).append(change)
            tables[change.table.name] = change.table
        depth = _dependency_depth(tables)
        # Deletes last (children first); a split table's rows are created (by the pair
        # that can) before the other pair's columns are updated into them.
        order = sorted(
            [*groups, *images],
            key=lambda g: (g[1], g[2], -depth[g[0]] if g[1] else depth[g[0]]),
        )
        try:
            with conn.begin_nested():
                for kind in order:
                    if kind in images:
                        setwrites.upsert_images(conn, images[kind].statement, images[kind].payloads)
                    else:
                        self._write_group(conn, groups[kind])
        except Exception as exc:
            if is_unavailable(exc):
                raise
            log.info(
                "%s: coalesced write of %d keys failed (%s); writing them in commit order",
                self.context,
                len(final),
                str(exc).splitlines()[0],
            )
            return False
        return True

    def _mapped_upsert(
        self, conn: Connection, direction: Direction, aggregate_type: str
    ) -> tuple[Table, str] | None:
        """The service table and SQL-converting upsert of a pair's monolith upserts (their
        payloads go to the service untouched, :func:`setwrites.mapped_upsert`), or None."""
        if direction.target != "service":
            return None
        pair = self._pairs.get(aggregate_type)
        if pair is None:
            return None
        table = self.table("service", pair, conn)
        statement = setwrites.mapped_upsert(pair, table)
        return None if statement is None else (table, statement)

    def _write_group(self, conn: Connection, group: list[_Change]) -> None:
        first = group[0]
        table, keys = first.table, first.keys
        if first.row is None:
            setwrites.delete_keys(conn, table, keys, [change.values for change in group])
            return
        rows = [change.row for change in group if change.row is not None]
        if first.update_only:
            present = setwrites.existing_keys(conn, table, keys, [c.values for c in group])
            for change in group:
                if change.values not in present:
                    raise SplitRowMissing(change.update_only)
            setwrites.update_rows(conn, table, rows, keys)
        elif setwrites.json_fits(table, list(rows[0])):
            setwrites.upsert_rows(conn, table, rows, keys)
        else:
            upsert(conn, table, rows, keys)

    def _guards(self, conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        rows = conn.execute(_GUARDS, {"ctx": self.context, "keys": keys})
        return {(row[0], row[1]): int(row[2]) for row in rows}

    def _save_guards(self, conn: Connection, guards: dict[tuple[str, str], int]) -> None:
        if not guards:
            return
        now = datetime.now(UTC)
        rows = [
            {
                "context": self.context,
                "aggregate_type": kind,
                "aggregate_key": key,
                "last_event_id": last,
                "applied_at": now,
            }
            for (kind, key), last in sorted(guards.items())
        ]
        upsert(conn, applied_table, rows, ["context", "aggregate_type", "aggregate_key"])

    def _own_unapplied_keys(
        self, conn: Connection, keys: list[Key], targets: dict[Key, str]
    ) -> set[Key]:
        """Keys (source's) that the target (the source of truth here) changed and has not
        relayed yet (id-map keys are looked for under the target's key)."""
        back = {(key[0], targets[key]): key for key in keys if key in targets}
        own = self._in_target(keys, targets)
        if not own:
            return set()
        if conn.dialect.name == "postgresql":
            busy = setwrites.unapplied_keys(conn, self.context, own, UNAPPLIED)
        else:
            busy = {
                (r[0], r[1])
                for r in conn.execute(_OWN_UNAPPLIED, {"ctx": self.context, "keys": own})
            }
        return {back.get(key, key) for key in busy}

    def _supersede_own(
        self, conn: Connection, keys: list[tuple[str, str]], direction: Direction
    ) -> None:
        """The truth's version just overwrote these rows: the target's own events lose."""
        reason = f"superseded by the {direction.source}'s version (source of truth)"
        if conn.dialect.name == "postgresql":
            setwrites.supersede_keys(
                conn, self.context, keys, UNAPPLIED, SUPERSEDED, datetime.now(UTC), reason
            )
            return
        conn.execute(
            _SUPERSEDE,
            {
                "ctx": self.context,
                "keys": keys,
                "now": datetime.now(UTC),
                "reason": reason,
            },
        )

    def table(self, side: str, pair: TableMapping, conn: Connection | None = None) -> Table:
        """The reflected table of ``pair`` on ``side`` (through ``conn`` inside a transaction)."""
        name = pair.service_table if side == "service" else pair.monolith_table
        cached = self._tables.get((side, name))
        if cached is None:
            cached = Table(name, MetaData(), autoload_with=conn or self.engines[side])
            self._tables[(side, name)] = cached
        return cached

    def _change(
        self, conn: Connection, direction: Direction, event: Event, targets: dict[Key, str]
    ) -> _Change | None:
        """The row write ``event`` asks for, converted through the mapping.

        None when there is nothing to write: an id-map row the target never had (its
        final event deletes it, or the map has no key for it).
        """
        try:
            pair = self.mapping.table(event.aggregate_type)
            side: KeySide = "service" if direction.target == "service" else "monolith"
            table = self.table(side, pair, conn)
            key_text = event.aggregate_key
            if pair.key.id_map:
                if event.key not in targets:
                    return None
                key_text = targets[event.key]
            keys = list(pair.key.columns(side))
            values = tuple(bindable(conn, value) for value in pair.key.values_of(key_text, side))
            if event.operation == "delete":
                return _Change(event, table, keys, values, None)
            image = event.image()
            for column in json_columns(pair, direction.source):
                if column in image:
                    image[column] = json_floats(image[column])
            row = pair.to_service(image) if side == "service" else pair.to_monolith(image)
            row.update(zip(keys, values, strict=True))
            return _Change(event, table, keys, values, row, self._update_only(pair, table, event))
        except Exception as exc:
            if is_unavailable(exc):
                raise
            raise ApplyFailed(event, exc) from exc

    def _update_only(self, pair: TableMapping, table: Table, event: Event) -> str:
        """Why an event may only update its monolith row ('' when it may insert it too).

        Only a pair of a split table that lacks some of the table's NOT NULL columns;
        writes into the service never are.
        """
        if table.name not in self._split or table.name != pair.monolith_table:
            return ""
        missing = missing_required(pair, table)
        if not missing:
            return ""
        others = [
            other.name
            for other in self._split[table.name]
            if other.name != pair.name and set(missing) & set(other.monolith_columns)
        ]
        return split_row_missing(pair, event.aggregate_key, missing, others)

    def _flush(self, conn: Connection, run: _Run) -> None:
        """Write a run of same-kind changes to distinct rows of one table in one statement."""
        if not run.changes:
            return
        first = run.changes[0]
        table, keys = first.table, first.keys
        current = first
        try:
            if first.row is None:
                conn.execute(delete(table).where(_keys_in(table, keys, run.changes)))
            elif first.update_only:
                present = {
                    tuple(row)
                    for row in conn.execute(
                        select(*(table.c[k] for k in keys)).where(
                            _keys_in(table, keys, run.changes)
                        )
                    )
                }
                for change in run.changes:
                    current = change
                    if change.values not in present:
                        raise SplitRowMissing(change.update_only)
                current = first
                for change in run.changes:
                    assert change.row is not None
                    matches = [table.c[k] == v for k, v in zip(keys, change.values, strict=True)]
                    conn.execute(update(table).where(*matches).values(**change.row))
            else:
                upsert(conn, table, [change.row for change in run.changes if change.row], keys)
        except Exception as exc:
            if is_unavailable(exc):
                raise
            raise ApplyFailed(current.event, exc) from exc

    def _mark(self, conn: Connection, results: list[Applied]) -> None:
        """Mark ``results`` applied (or superseded) in ``conn``'s (asynchronous) transaction."""
        now = datetime.now(UTC)
        by_status: dict[str, list[int]] = {}
        for result in results:
            status = SUPERSEDED if result.outcome is Outcome.SUPERSEDED else "applied"
            by_status.setdefault(status, []).append(result.event.id)
        for status, ids in by_status.items():
            if conn.dialect.name == "postgresql":
                setwrites.mark_events(conn, ids, status, now, UNAPPLIED)
            else:
                conn.execute(_MARK, {"ids": ids, "new_status": status, "now": now})

    def _observe(self, direction: Direction, results: list[Applied]) -> None:
        now = datetime.now(UTC)
        outcomes: dict[Outcome, int] = {}
        lag_metric = LAG.labels(self.context, direction.value)
        per_event = len(results) <= LOGGED_EVENTS
        for result in results:
            event = result.event
            outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
            lag = (now - event.created_at).total_seconds()
            if result.outcome is Outcome.APPLIED:
                lag_metric.observe(max(lag, 0.0))
            if per_event or log.isEnabledFor(logging.DEBUG):
                log.log(
                    logging.INFO if per_event else logging.DEBUG,
                    "%s %s %s/%s event %s: %s (lag %.1f ms)",
                    direction.value,
                    event.operation,
                    event.aggregate_type,
                    event.aggregate_key,
                    event.id,
                    result.outcome.value,
                    lag * 1000,
                    extra={"request_id": event.request, "event_id": event.event_id},
                )
        for outcome, count in outcomes.items():
            EVENTS.labels(self.context, direction.value, outcome.value).inc(count)
        if not per_event:
            log.info(
                "%s: %d events (ids %d..%d): %s",
                direction.value,
                len(results),
                results[0].event.id,
                results[-1].event.id,
                ", ".join(f"{count} {outcome.value}" for outcome, count in outcomes.items()),
            )

    # -- failures ------------------------------------------------------------------------

    def record_failure(self, direction: Direction, event: Event, error: BaseException) -> int:
        """Count one failed attempt of ``event`` (now waiting for a retry); returns attempts."""
        FAILURES.labels(self.context, direction.value, "apply").inc()
        with self.engines[direction.source].begin() as conn:
            conn.execute(
                update(outbox_table)
                .where(outbox_table.c.id == event.id, outbox_table.c.status.in_(UNAPPLIED))
                .values(
                    attempts=outbox_table.c.attempts + 1,
                    last_error=str(error)[:2000],
                    status=EventStatus.IN_FLIGHT.value,
                )
            )
            attempts = conn.execute(
                select(outbox_table.c.attempts).where(outbox_table.c.id == event.id)
            ).scalar_one()
        log.warning(
            "%s event %s %s/%s failed (attempt %s): %s",
            direction.value,
            event.id,
            event.aggregate_type,
            event.aggregate_key,
            attempts,
            error,
            extra={"request_id": event.request, "event_id": event.event_id},
        )
        return int(attempts)

    def mark_in_flight(self, direction: Direction, events: Sequence[Event]) -> None:
        """Hand ``events`` to Celery: the relay loop leaves them to their task."""
        with self.engines[direction.source].begin() as conn:
            conn.execute(
                update(outbox_table)
                .where(
                    outbox_table.c.id.in_([event.id for event in events]),
                    outbox_table.c.status == EventStatus.PENDING.value,
                )
                .values(status=EventStatus.IN_FLIGHT.value)
            )

    def dead_letter(self, direction: Direction, event: Event) -> None:
        """Move ``event`` to ``strangler_dead_letter`` (status ``dead``)."""
        with self.engines[direction.source].begin() as conn:
            current = conn.execute(
                select(outbox_table).where(outbox_table.c.id == event.id)
            ).first()
            if current is None or current.status not in UNAPPLIED:
                return
            row = current._mapping
            conn.execute(
                insert(dead_letter_table).values(
                    outbox_id=row["id"],
                    **{name: row[name] for name in (*EVENT_COLUMNS, "attempts", "last_error")},
                    dead_at=datetime.now(UTC),
                )
            )
            conn.execute(
                update(outbox_table)
                .where(outbox_table.c.id == event.id)
                .values(status=EventStatus.DEAD.value)
            )
            waiting = conn.execute(
                select(func.count()).where(
                    outbox_table.c.context == self.context,
                    outbox_table.c.status == EventStatus.PENDING.value,
                    outbox_table.c.aggregate_type == event.aggregate_type,
                    outbox_table.c.aggregate_key == event.aggregate_key,
                )
            ).scalar_one()
        log.error(
            "%s event %s %s/%s dead-lettered after %s attempts: %s; the key's %s later "
            "event(s) wait behind it (strangler dualwrite retry-dead %s)",
            direction.value,
            event.id,
            event.aggregate_type,
            event.aggregate_key,
            row["attempts"],
            row["last_error"],
            waiting,
            self.context,
            extra={"request_id": event.request, "event_id": event.event_id},
        )

    def retry_key(self, direction: Direction, aggregate_type: str, aggregate_key: str) -> int:
        """Apply every unapplied event of one key (a Celery retry). Returns events handled.

        A failing event counts an attempt; after ``max_attempts`` it is dead-lettered and
        the key's later events wait behind it (``strangler dualwrite retry-dead`` puts it
        back). Raises :class:`ApplyFailed` (with ``attempts`` set) when the event should be
        retried later, :class:`StoreUnavailable` when a database is unreachable.
        """
        with self._guarded(direction.source) as conn:
            chain = self.unapplied(conn, [(aggregate_type, aggregate_key)])
        if not chain:
            return 0
        try:
            return len(self.apply_pinpointed(direction, chain, whole_chain=True))
        except ApplyFailed as failure:
            attempts = self.record_failure(direction, failure.event, failure)
            if attempts < self.settings.max_attempts:
                failure.attempts = attempts
                raise
            self.dead_letter(direction, failure.event)
            return 1

    def requeue_dead(self, direction: Direction) -> int:
        """Put dead-lettered events back to pending (``strangler dualwrite retry-dead``)."""
        with self.engines[direction.source].begin() as conn:
            ids = [
                row[0]
                for row in conn.execute(
                    select(dead_letter_table.c.outbox_id).where(
                        dead_letter_table.c.context == self.context
                    )
                )
            ]
            if not ids:
                return 0
            conn.execute(
                update(outbox_table)
                .where(outbox_table.c.id.in_(ids), outbox_table.c.status == EventStatus.DEAD.value)
                .values(status=EventStatus.PENDING.value, attempts=0, last_error=None)
            )
            conn.execute(delete(dead_letter_table).where(dead_letter_table.c.outbox_id.in_(ids)))
        return len(ids)

    # -- helpers ---------------------------------------------------------------------------

    def _guarded(self, side: str) -> Any:
        """A connection to ``side``; connection errors become :class:`StoreUnavailable`."""
        return _GuardedConnection(self.engines[side])

    def _reading(self, side: str) -> Any:
        """A read-only connection to ``side`` (PostgreSQL: autocommit, no BEGIN/ROLLBACK)."""
        engine = self.engines[side]
        if engine.dialect.name != "postgresql":
            return _GuardedConnection(engine)
        if side not in self._autocommit:
            self._autocommit[side] = engine.execution_options(isolation_level="AUTOCOMMIT")
        return _GuardedConnection(self._autocommit[side])

    def _marking(self, side: str) -> Any:
        """A transaction for outbox marks only, committed asynchronously on PostgreSQL.

        Losing a mark in a crash redelivers its event, which the version guard absorbs.
        PostgreSQL: one autocommit statement on a ``synchronous_commit = off`` session.
        """
        engine = self.engines[side]
        if engine.dialect.name != "postgresql":
            return engine.begin()
        marks = self._marks.get(side)
        if marks is None:
            url = engine.url.render_as_string(hide_password=False)
            marks = relay_engine(url, pool_size=2, async_commit=True).execution_options(
                isolation_level="AUTOCOMMIT"
            )
            self._marks[side] = marks
        return marks.connect()

    def _backfill_running(self, conn: Connection) -> bool:
        """:meth:`backfill_running` inside ``conn``'s service transaction (no extra connection).

        A service database without the backfill table (not migrated yet) has no backfill;
        only the table's presence is remembered, so a later migration is seen.
        """
        if not self._has_backfill_table:
            self._has_backfill_table = inspect(conn).has_table(backfill_table.name)
            if not self._has_backfill_table:
                return False
        return bool(conn.execute(_BACKFILLING, {"ctx": self.context}).scalar_one())

    def backfill_running(self) -> bool:
        """True while a backfill of this context has unfinished tables (monolith events wait)."""
        with self._guarded("service") as conn:
            try:
                return self._backfill_running(conn)
            except Exception as exc:
                if is_unavailable(exc) and "no such table" not in str(exc):
                    raise
                conn.rollback()
                return False


def _origin_marker(conn: Connection, request_id: str) -> Any:
    """SQLite: mark the relay's writes with the marker row; PostgreSQL: :func:`relay_lock` did."""
    if conn.dialect.name == "postgresql":
        return nullcontext()
    return relay_origin(conn, request_id)


class _Attempt:
    """Around an apply transaction: an error of any statement or of its COMMIT (a deferred
    constraint, a serialization failure) becomes :class:`CommitFailed` for ``chain``.

    Errors that mean "not now" (:func:`is_unavailable`) and the package's own pass through.
    """

    def __init__(self) -> None:
        self.chain: list[Event] = []

    def __enter__(self) -> _Attempt:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None or not self.chain or not isinstance(exc, Exception):
            return
        if isinstance(exc, DualwriteError) or is_unavailable(exc):
            return
        raise CommitFailed(self.chain, exc) from exc


def _dependency_depth(tables: dict[str, Table]) -> dict[str, int]:
    """How deep each table sits below the others it references (parents 0, children more)."""
    depth: dict[str, int] = {}

    def visit(name: str, path: frozenset[str]) -> int:
        if name in depth:
            return depth[name]
        parents = {
            fk.column.table.name for fk in tables[name].foreign_keys
        } & tables.keys() - path - {name}
        depth[name] = 1 + max((visit(p, path | {name}) for p in parents), default=-1)
        return depth[name]

    for name in tables:
        visit(name, frozenset())
    return depth


@dataclass(frozen=True)
class _Change:
    event: Event
    table: Table
    keys: list[str]  # the target's key columns
    values: tuple[Any, ...]  # the row's key values (target form)
    row: dict[str, Any] | None  # None: delete
    update_only: str = ""  # why the row may only be updated (a split table's pair), or ''

    @property
    def kind(self) -> tuple[str, bool, bool]:
        return (self.table.name, self.row is None, bool(self.update_only))


def _keys_in(table: Table, keys: list[str], changes: Sequence[_Change]) -> ColumnElement[bool]:
    """SQL: the row's key is one of ``changes``'s (a row value for a composite key)."""
    if len(keys) == 1:
        return table.c[keys[0]].in_([change.values[0] for change in changes])
    return tuple_(*(table.c[k] for k in keys)).in_([change.values for change in changes])


_Kind = tuple[str, bool, bool, tuple[str, ...]]
"""A coalesced write's group: (table, delete?, update only?, its columns or statement)."""


@dataclass
class _Images:
    """Monolith row images upserted into one service table by a SQL-converting statement."""

    statement: str
    payloads: list[str] = field(default_factory=list)


@dataclass
class _Run:
    """Consecutive changes of one kind (upsert or delete) to distinct rows of one table."""

    changes: list[_Change] = field(default_factory=list)
    keys: set[tuple[str, str]] = field(default_factory=set)

    def accepts(self, change: _Change) -> bool:
        if not self.changes:
            return True
        same_shape = self.changes[0].row is None or (
            change.row is not None and change.row.keys() == self.changes[0].row.keys()
        )
        return (
            change.kind == self.changes[0].kind and same_shape and change.event.key not in self.keys
        )

    def add(self, change: _Change) -> None:
        self.changes.append(change)
        self.keys.add(change.event.key)


class _GuardedConnection:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conn: Connection | None = None

    def __enter__(self) -> Connection:
        try:
            self.conn = self.engine.connect()
        except Exception as exc:
            raise StoreUnavailable(str(exc)) from exc
        return self.conn

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        assert self.conn is not None
        self.conn.close()
        if exc is not None and not isinstance(exc, ApplyFailed) and is_unavailable(exc):
            raise StoreUnavailable(str(exc)) from exc
