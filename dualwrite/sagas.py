"""The monolith's sagas as the control plane sees them: counts, stuck ones, retry.

The saga engine (:mod:`dualwrite.django_app.saga`) runs inside the monolith with
Django; this module reads the same ``strangler_saga`` table with SQLAlchemy Core, as
:mod:`dualwrite.status` reads the outbox, so ``strangler saga`` and the dashboard never
configure Django. The ``payload`` column (it may hold a card token while a saga runs)
is never selected.

A saga is *stuck* when it is dead-lettered, or active (running or compensating) and
either failing (``attempts > 0``) or untouched for ``stuck_after_s`` seconds.

    engine = monolith_engine()              # STRANGLER_MONOLITH_DATABASE_URL, DATABASE_URL
    saga_counts(engine).states              # {"running": 2, "dead": 1, ...}
    list_sagas(engine, stuck_only=True)     # dead first, then the longest untouched
    retry_dead(engine, 42)                  # back where it died, with fresh attempts
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    Text,
    and_,
    case,
    func,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Row, RowMapping, make_url
from sqlalchemy.exc import DBAPIError

from dualwrite.exceptions import SagaNotDead, SagaNotFound, SagaTableMissing, StoreUnavailable
from migration_plans.core.database import engine as make_engine
from migration_plans.core.database import sqlalchemy_url

__all__ = [
    "ACTIVE_STATES",
    "SAGA_TABLE",
    "STATES",
    "STUCK_AFTER_S",
    "SagaCounts",
    "SagaSummary",
    "list_sagas",
    "monolith_engine",
    "monolith_url",
    "printable",
    "retry_dead",
    "saga_counts",
    "saga_table",
]

SAGA_TABLE = "strangler_saga"
STATES = ("running", "compensating", "completed", "compensated", "dead")
ACTIVE_STATES = ("running", "compensating")
DEAD = "dead"
STUCK_AFTER_S = 60.0
DEFAULT_MONOLITH_URL = "sqlite:///var/monolith.sqlite3"
CONNECT_TIMEOUT_S = 5

saga_metadata = MetaData()

#: ``dualwrite.django_app.models.Saga`` (migration ``0003_saga``), column for column.
saga_table = Table(
    SAGA_TABLE,
    saga_metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("key", String(128), nullable=False, unique=True),
    Column("subject", String(128), nullable=False, index=True),
    Column("state", String(16), nullable=False),
    Column("step", Integer, nullable=False, default=0),
    Column("step_name", String(64), nullable=False, default=""),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("payload", Text, nullable=False, default="{}"),
    Column("outcome", String(64), nullable=False, default=""),
    Column("last_error", Text, nullable=False, default=""),
    Column("dead_from", String(16), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Index("ix_strangler_saga_due", "state", "next_attempt_at"),
)

#: Every column an operator may see: all but ``payload``.
_SHOWN = [column for column in saga_table.c if column.name != "payload"]

T = TypeVar("T")


# -- where the monolith is ----------------------------------------------------------------


def monolith_url(environ: Mapping[str, str] | None = None) -> str:
    """The monolith's database: ``STRANGLER_MONOLITH_DATABASE_URL``, else ``DATABASE_URL``
    (the monolith's own setting), else ``sqlite:///var/monolith.sqlite3``."""
    env = os.environ if environ is None else environ
    for name in ("STRANGLER_MONOLITH_DATABASE_URL", "DATABASE_URL"):
        value = env.get(name, "").strip()
        if value:
            return value
    return DEFAULT_MONOLITH_URL


def monolith_engine(url: str | None = None) -> Engine:
    """An engine on the monolith's database (default :func:`monolith_url`).

    A SQLite file that does not exist is refused (:class:`StoreUnavailable`) rather
    than created empty: it means the URL points at the wrong place.
    """
    url = url or monolith_url()
    parsed = make_url(sqlalchemy_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(str(parsed.database))
        if not str(parsed.database).startswith("file:") and not path.exists():
            raise StoreUnavailable(
                f"no monolith database at {path} (set STRANGLER_MONOLITH_DATABASE_URL)"
            )
    return make_engine(url, connect_timeout=CONNECT_TIMEOUT_S)


# -- what an operator sees ----------------------------------------------------------------


def printable(text: str | None, *, one_line: bool = False) -> str:
    """``text`` without terminal control or format characters (escape sequences, bidi
    overrides); newlines and tabs stay unless ``one_line``, which folds every run of
    whitespace into one space."""
    if not text:
        return ""
    kept = []
    for char in text.replace("\r\n", "\n"):
        if char in "\n\t" and not one_line:
            kept.append(char)
        elif char in "\r\n\t\v\f\u2028\u2029\x85":
            kept.append(" ")
        elif unicodedata.category(char) not in ("Cc", "Cf"):
            kept.append(char)
    cleaned = "".join(kept)
    return " ".join(cleaned.split()) if one_line else cleaned


def _aware(moment: Any) -> datetime | None:
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class SagaSummary:
    """One saga as an operator sees it, never its payload; stored text is made
    :func:`printable` (``last_error`` keeps its lines, :attr:`error_line` is one).

    ``age_s``: since it started; ``idle_s``: since it last changed.
    """

    id: int
    kind: str
    key: str
    subject: str
    state: str
    step: int
    step_name: str
    attempts: int
    outcome: str
    last_error: str
    dead_from: str
    lease_owner: str | None
    next_attempt_at: datetime | None
    lease_until: datetime | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    stuck: bool
    age_s: float
    idle_s: float

    @property
    def error_line(self) -> str:
        """``last_error`` on one line."""
        return printable(self.last_error, one_line=True)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes in ISO 8601, seconds rounded to a tenth."""
        data = asdict(self)
        for name, value in data.items():
            if isinstance(value, datetime):
                data[name] = value.isoformat()
        data["age_s"], data["idle_s"] = round(self.age_s, 1), round(self.idle_s, 1)
        return data


@dataclass(frozen=True)
class SagaCounts:
    """How many sagas are in each state (every state, zeros included), of each kind,
    and stuck."""

    states: dict[str, int]
    kinds: dict[str, int]
    stuck: int

    @property
    def total(self) -> int:
        return sum(self.states.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "states": dict(self.states),
            "kinds": dict(self.kinds),
            "stuck": self.stuck,
            "total": self.total,
        }


def _is_stuck(state: str, attempts: int, updated_at: datetime, cutoff: datetime) -> bool:
    """The rule of :func:`_stuck_clause`, on a row already read."""
    if state == DEAD:
        return True
    return state in ACTIVE_STATES and (attempts > 0 or updated_at < cutoff)


def _summary(row: RowMapping, now: datetime, cutoff: datetime) -> SagaSummary:
    created, updated = _aware(row["created_at"]), _aware(row["updated_at"])
    assert created is not None and updated is not None  # NOT NULL columns
    owner = row["lease_owner"]
    return SagaSummary(
        id=int(row["id"]),
        kind=printable(row["kind"], one_line=True),
        key=printable(row["key"], one_line=True),
        subject=printable(row["subject"], one_line=True),
        state=printable(row["state"], one_line=True),
        step=int(row["step"]),
        step_name=printable(row["step_name"], one_line=True),
        attempts=int(row["attempts"]),
        outcome=printable(row["outcome"], one_line=True),
        last_error=printable(row["last_error"]),
        dead_from=printable(row["dead_from"], one_line=True),
        lease_owner=None if owner is None else printable(owner, one_line=True),
        next_attempt_at=_aware(row["next_attempt_at"]),
        lease_until=_aware(row["lease_until"]),
        created_at=created,
        updated_at=updated,
        finished_at=_aware(row["finished_at"]),
        stuck=_is_stuck(row["state"], int(row["attempts"]), updated, cutoff),
        age_s=max(0.0, (now - created).total_seconds()),
        idle_s=max(0.0, (now - updated).total_seconds()),
    )


# -- reading ------------------------------------------------------------------------------


def _stuck_clause(cutoff: datetime) -> ColumnElement[bool]:
    columns = saga_table.c
    failing = or_(columns.attempts > 0, columns.updated_at < cutoff)
    return or_(columns.state == DEAD, and_(columns.state.in_(ACTIVE_STATES), failing))


def _rank(cutoff: datetime) -> ColumnElement[int]:
    """0 dead, 1 stuck while active, 2 active, 3 finished (or unknown)."""
    columns = saga_table.c
    active = columns.state.in_(ACTIVE_STATES)
    return case(
        (columns.state == DEAD, 0),
        (and_(active, _stuck_clause(cutoff)), 1),
        (active, 2),
        else_=3,
    )


def _cutoff(now: datetime, stuck_after_s: float) -> datetime:
    return now - timedelta(seconds=stuck_after_s)


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


def _unavailable(engine: Engine, exc: BaseException) -> StoreUnavailable:
    where = engine.url.render_as_string(hide_password=True)
    return StoreUnavailable(f"cannot read the monolith database {where}: {_first_line(exc)}")


def _has_table(engine: Engine) -> bool:
    """Whether the monolith has been migrated (:class:`StoreUnavailable` if it does not
    answer at all)."""
    try:
        with engine.connect() as conn:
            conn.execution_options(sqlite_begin="DEFERRED")
            return inspect(conn).has_table(SAGA_TABLE)
    except DBAPIError as exc:
        raise _unavailable(engine, exc) from exc


def _read(engine: Engine, query: Callable[[Connection], T], empty: T) -> T:
    """``query`` in a reading transaction; ``empty`` when the monolith has no saga table
    yet. Raises :class:`StoreUnavailable` when the database cannot be read: an unknown
    state is never an empty one."""
    try:
        with engine.connect() as conn:
            # SQLite: a reader must not queue for the write lock the monolith's writers hold.
            conn.execution_options(sqlite_begin="DEFERRED")
            return query(conn)
    except DBAPIError as exc:
        if _has_table(engine):
            raise _unavailable(engine, exc) from exc
        return empty


def saga_counts(
    engine: Engine, *, stuck_after_s: float = STUCK_AFTER_S, now: datetime | None = None
) -> SagaCounts:
    """Sagas per state and per kind, and how many are stuck (all zero before the
    monolith is migrated)."""
    cutoff = _cutoff(now or datetime.now(UTC), stuck_after_s)
    stuck = func.sum(case((_stuck_clause(cutoff), 1), else_=0))
    query = select(saga_table.c.state, saga_table.c.kind, func.count(), stuck).group_by(
        saga_table.c.state, saga_table.c.kind
    )
    empty: list[Row[Any]] = []
    rows = _read(engine, lambda conn: list(conn.execute(query).all()), empty)
    states = dict.fromkeys(STATES, 0)
    kinds: dict[str, int] = {}
    total_stuck = 0
    for state, kind, count, stuck_count in rows:
        state_name = printable(state, one_line=True)
        kind_name = printable(kind, one_line=True)
        states[state_name] = states.get(state_name, 0) + int(count)
        kinds[kind_name] = kinds.get(kind_name, 0) + int(count)
        total_stuck += int(stuck_count or 0)
    return SagaCounts(states=states, kinds=dict(sorted(kinds.items())), stuck=total_stuck)


def _listing(
    cutoff: datetime, state: str | None, kind: str | None, stuck_only: bool, limit: int
) -> Select[Any]:
    columns = saga_table.c
    rank = _rank(cutoff)
    unfinished = columns.state.in_((*ACTIVE_STATES, DEAD))
    query = select(*_SHOWN).order_by(
        rank,
        case((unfinished, columns.updated_at), else_=None).asc(),  # the longest untouched first
        func.coalesce(columns.finished_at, columns.updated_at).desc(),  # then the newest done
        columns.id.desc(),
    )
    if state is not None:
        query = query.where(columns.state == state)
    if kind is not None:
        query = query.where(columns.kind == kind)
    if stuck_only:
        query = query.where(_stuck_clause(cutoff))
    return query.limit(limit)


def list_sagas(
    engine: Engine,
    *,
    state: str | None = None,
    kind: str | None = None,
    stuck_only: bool = False,
    limit: int = 50,
    stuck_after_s: float = STUCK_AFTER_S,
    now: datetime | None = None,
) -> list[SagaSummary]:
    """Up to ``limit`` sagas, stuck ones first (dead first, then the longest untouched),
    then the other active ones, then finished ones, newest first.

        list_sagas(engine, kind="place_order", stuck_only=True, limit=10)
    """
    moment = now or datetime.now(UTC)
    cutoff = _cutoff(moment, stuck_after_s)
    query = _listing(cutoff, state, kind, stuck_only, limit)
    empty: list[RowMapping] = []
    rows = _read(engine, lambda conn: list(conn.execute(query).mappings()), empty)
    return [_summary(row, moment, cutoff) for row in rows]


# -- the operator's retry -----------------------------------------------------------------


def retry_dead(engine: Engine, saga_id: int, *, now: datetime | None = None) -> SagaSummary:
    """Put a dead-lettered saga back where it died (``dead_from``, else running) with
    fresh attempts and no lease; the monolith's sweeper resumes it when it next runs.

    One transaction holding the row (``FOR UPDATE`` on PostgreSQL, the write lock of
    ``BEGIN IMMEDIATE`` on SQLite). Raises :class:`SagaNotFound`, :class:`SagaNotDead`,
    :class:`SagaTableMissing`, or :class:`StoreUnavailable`.
    """
    moment = now or datetime.now(UTC)
    try:
        with engine.begin() as conn:
            row = _locked(conn, saga_id)
            resume = row["dead_from"] if row["dead_from"] in ACTIVE_STATES else "running"
            conn.execute(
                update(saga_table)
                .where(saga_table.c.id == saga_id, saga_table.c.state == DEAD)
                .values(
                    state=resume,
                    dead_from="",
                    attempts=0,
                    next_attempt_at=None,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=moment,
                )
            )
            after = conn.execute(select(*_SHOWN).where(saga_table.c.id == saga_id)).mappings()
            return _summary(after.one(), moment, _cutoff(moment, STUCK_AFTER_S))
    except DBAPIError as exc:
        if not _has_table(engine):
            raise SagaTableMissing(
                f"the monolith database has no {SAGA_TABLE} table: run its migrations "
                "first (strangler monolith migrate)"
            ) from exc
        raise _unavailable(engine, exc) from exc


def _locked(conn: Connection, saga_id: int) -> RowMapping:
    """The saga's row, locked until the transaction ends; refused unless it is dead."""
    query = select(*_SHOWN).where(saga_table.c.id == saga_id).with_for_update()
    row = conn.execute(query).mappings().first()
    if row is None:
        raise SagaNotFound(f"no saga with id {saga_id} (`strangler saga status` lists them)")
    if row["state"] != DEAD:
        state = printable(row["state"], one_line=True)
        raise SagaNotDead(
            f"saga {saga_id} ({printable(row['key'], one_line=True)}) is {state}, not dead: "
            "only a dead-lettered saga can be retried"
            + (" (an active saga is resumed by the sweeper)" if state in ACTIVE_STATES else "")
        )
    return row
