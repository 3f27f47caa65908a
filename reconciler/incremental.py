"""Incremental runs: only the keys the outboxes say changed since the last clean run.

Every run notes, per side, the highest ``strangler_outbox`` id at its start (its
``watermark_to``); a clean run that is stored makes that the table's watermark (see
:mod:`reconciler.history`). An incremental run's work list is every key of the pair
with an event above the watermark, or with an event not applied yet (in flight, stuck
or dead), on either side; those rows are fetched by key from both sides and compared
with the same fetch and diff as a full run.

The keys the table's newest stored run left divergent are checked again too (so a
divergence a full run found in a key without an event is not forgotten); when that
run listed fewer keys than it found, the table is checked in full.

Rows changed without an event (capture off, raw SQL on a table that is not captured,
restores, hand edits) are not in any outbox: only full runs find them. Neither are
events pruned before the next run, nor (once applied) an event whose transaction was
still open when the clean run took its marks and got a lower id than them.

    marks = outbox_marks(monolith, service)              # {"monolith": 812, "service": 77}
    keys = changed_keys(pair, (monolith, service), since=baseline.watermark, upto=marks)
    result = check_keys(pair, (monolith, service), [*keys, *baseline.carried])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from migration_plans.core.idmap import monolith_keys
from migration_plans.core.outbox import OPEN_STATUSES, OUTBOX_TABLE, EventStatus
from reconciler.diff import Key
from reconciler.exceptions import DatabaseError
from reconciler.schema import UNMAPPED, PairSchema
from reconciler.segment import SegmentResult, compare_fetched, fetch_keys

SIDES = ("monolith", "service")
KEY_CHUNK = 10_000
"""Keys fetched per snapshot: bounds memory when many keys changed."""


@dataclass(frozen=True)
class Baseline:
    """Where a table's incremental run starts: the watermark (outbox id per side) of its
    last clean run, and the keys its newest run left divergent (None: more than it listed)."""

    watermark: Mapping[str, int]
    carried: tuple[Key, ...] | None = ()


_outbox = sa.table(
    OUTBOX_TABLE,
    sa.column("id"),
    sa.column("aggregate_type"),
    sa.column("aggregate_key"),
    sa.column("status"),
)
_UNAPPLIED = (*OPEN_STATUSES, EventStatus.DEAD.value)


def _has_outbox(engine: Engine) -> bool:
    return sa.inspect(engine).has_table(OUTBOX_TABLE)


def _failing(engine: Engine, side: str, exc: SQLAlchemyError) -> DatabaseError:
    url = engine.url.render_as_string(hide_password=True)
    return DatabaseError(f"{side} database {url}: reading {OUTBOX_TABLE}: {exc}")


def outbox_marks(engines: Sequence[Engine]) -> dict[str, int]:
    """The highest outbox id on each side now (0 where there is no outbox yet)."""
    marks: dict[str, int] = {}
    for side, engine in zip(SIDES, engines, strict=True):
        try:
            if not _has_outbox(engine):
                marks[side] = 0
                continue
            with engine.connect() as conn:
                marks[side] = int(conn.execute(sa.select(sa.func.max(_outbox.c.id))).scalar() or 0)
        except SQLAlchemyError as exc:
            raise _failing(engine, side, exc) from exc
    return marks


def _as_key(pair: PairSchema, text: str) -> Key | None:
    if not pair.reports_int:
        return text
    try:
        return int(text)
    except ValueError:
        return None


def changed_keys(
    pair: PairSchema,
    engines: Sequence[Engine],
    *,
    since: Mapping[str, int],
    upto: Mapping[str, int],
) -> list[Key]:
    """Keys with an event in ``(since, upto]`` on either side, or one not applied yet."""
    mapping = pair.mapping
    types = [mapping.name, mapping.monolith_table, mapping.service_table]
    found: set[Key] = set()
    for side, engine in zip(SIDES, engines, strict=True):
        window = sa.and_(_outbox.c.id > since.get(side, 0), _outbox.c.id <= upto.get(side, 0))
        query = (
            sa.select(_outbox.c.aggregate_key)
            .where(_outbox.c.aggregate_type.in_(types))
            .where(sa.or_(window, _outbox.c.status.in_(_UNAPPLIED)))
            .distinct()
        )
        try:
            if not _has_outbox(engine):
                continue
            with engine.connect() as conn:
                texts = list(conn.execute(query).scalars().all())
                if side == "service" and mapping.key.id_map:
                    texts = _as_monolith_keys(conn, mapping.name, texts)
        except SQLAlchemyError as exc:
            raise _failing(engine, side, exc) from exc
        found.update(key for key in (_as_key(pair, text) for text in texts) if key is not None)
    return sorted(found)  # all int or all text


def _as_monolith_keys(conn: sa.Connection, pair: str, texts: Sequence[str]) -> list[str]:
    """An id-map pair's service events name service keys: the monolith keys the map gives
    them (the key the reconciler reports), or ``UNMAPPED`` + the service key."""
    mapped = monolith_keys(conn, pair, texts)
    return [mapped.get(text, UNMAPPED + text) for text in texts]


def check_keys(pair: PairSchema, engines: Sequence[Engine], keys: Sequence[Key]) -> SegmentResult:
    """Fetch ``keys`` from both sides (``KEY_CHUNK`` per snapshot) and diff them."""
    result = SegmentResult(table=pair.mapping.name, lo=0, hi=0)
    for start in range(0, len(keys), KEY_CHUNK):
        chunk = keys[start : start + KEY_CHUNK]
        left, right = fetch_keys(pair, engines[0], engines[1], chunk)
        result.monolith_rows += len(left)
        result.service_rows += len(right)
        result.rows_fetched += len(left) + len(right)
        result.divergences.extend(compare_fetched(pair.mapping, left, right))
    return result


def why_full(baseline: Baseline | None, upto: Mapping[str, int]) -> str | None:
    """Why an incremental run must check this table in full, or None."""
    if baseline is None:
        return "no clean run recorded yet"
    if baseline.carried is None:
        return "its last run found more divergent keys than it stored"
    behind = [side for side in SIDES if upto.get(side, 0) < baseline.watermark.get(side, 0)]
    if behind:
        return f"{' and '.join(behind)} outbox ids are below the watermark (outbox recreated?)"
    return None
