"""Transition history: every phase change of a context, who made it, and why it was allowed.

record_transition(engine, Transition(context="catalog", from_phase="shared",
                  to_phase="dual_write", actor="alice", forced=False, reason="",
                  gates={...}, route_table_hash="ab12..."))
last_transition(engine, "catalog")
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    inspect,
    select,
    text,
)

metadata = MetaData()

transitions_table = Table(
    "strangler_plan_transitions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("context", String(64), nullable=False, index=True),
    Column("from_phase", String(16), nullable=False),
    Column("to_phase", String(16), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("forced", Boolean, nullable=False, default=False),
    Column("reason", Text, nullable=False, default=""),
    Column("gates", Text, nullable=False, default="{}"),
    Column("route_table_hash", String(64), nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("cutover", Text, nullable=True),
)


@dataclass(frozen=True)
class Transition:
    """One recorded phase change."""

    context: str
    from_phase: str
    to_phase: str
    actor: str
    forced: bool = False
    reason: str = ""
    gates: dict[str, Any] = field(default_factory=dict)
    route_table_hash: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    cutover: dict[str, Any] | None = None
    """The live cut-over: epochs, step and fence-hold times, replicas left out and why."""


def ensure_schema(engine: Engine) -> None:
    """Create the history table if it does not exist; add columns later versions need."""
    metadata.create_all(engine)
    columns = {column["name"] for column in inspect(engine).get_columns(transitions_table.name)}
    if "cutover" not in columns:
        with engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {transitions_table.name} ADD COLUMN cutover TEXT"))


def record_transition(engine: Engine, transition: Transition) -> None:
    """Append ``transition`` to the history."""
    ensure_schema(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(transitions_table).values(
                context=transition.context,
                from_phase=transition.from_phase,
                to_phase=transition.to_phase,
                actor=transition.actor,
                forced=transition.forced,
                reason=transition.reason,
                gates=json.dumps(transition.gates, sort_keys=True, default=str),
                route_table_hash=transition.route_table_hash,
                at=transition.at,
                cutover=None
                if transition.cutover is None
                else json.dumps(transition.cutover, sort_keys=True, default=str),
            )
        )


def transitions(engine: Engine, context: str | None = None, limit: int = 50) -> list[Transition]:
    """Newest first; all contexts unless ``context`` is given."""
    ensure_schema(engine)
    query = select(transitions_table).order_by(transitions_table.c.id.desc()).limit(limit)
    if context is not None:
        query = query.where(transitions_table.c.context == context)
    with engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
        rows = conn.execute(query).mappings().all()
    return [
        Transition(
            context=row["context"],
            from_phase=row["from_phase"],
            to_phase=row["to_phase"],
            actor=row["actor"],
            forced=bool(row["forced"]),
            reason=row["reason"],
            gates=json.loads(row["gates"]),
            route_table_hash=row["route_table_hash"],
            at=row["at"] if row["at"].tzinfo else row["at"].replace(tzinfo=UTC),
            cutover=json.loads(row["cutover"]) if row["cutover"] else None,
        )
        for row in rows
    ]


def last_transition(engine: Engine, context: str) -> Transition | None:
    """The most recent transition of ``context``, if any."""
    found = transitions(engine, context, limit=1)
    return found[0] if found else None
