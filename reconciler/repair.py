"""Repair: copy the source of truth's rows to the other side, through the mapping.

The phase decides the direction: from its source of truth to the other side, when
the phase keeps that side in sync (``dual_write``: monolith -> service; ``split``:
service -> monolith, only while reverse sync is on; ``shared``: nothing to repair).
Rows are re-read at repair time, so a repair never writes a stale value; writes
are batched, idempotent (update, else insert; delete what the source lacks) and
each changed row gets an audit record. A repair that inserts rows moves the target's
id sequence with :func:`~migration_plans.core.sequences.advance_sequence`, as the
backfill does: never backwards, and past the source's largest id plus the headroom.

    plan = plan_repair(report, mapping, monolith_url, service_url, phase="dual_write")
    applied = apply_repair(plan, monolith_url, service_url)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, PrivateAttr
from sqlalchemy.exc import SQLAlchemyError

from migration_plans.core.keys import Side as KeySide
from migration_plans.core.mapping import ContextMapping, MappingValueError, TableMapping
from migration_plans.core.phase import Phase, Side
from migration_plans.core.sequences import advance_sequence, max_id
from reconciler.connections import engine_for
from reconciler.diff import Key, compare_rows, jsonable
from reconciler.exceptions import DatabaseError, RepairRefused
from reconciler.history import AuditRecord, record_repairs
from reconciler.report import Report
from reconciler.schema import inspect_pair
from reconciler.segment import Rows, fetch_keys

Action = Literal["insert", "update", "delete"]


class RepairAction(BaseModel):
    """One row to write on the target side (values in the target's own form)."""

    table: str
    key: Key
    action: Action
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    _values: dict[str, Any] | None = PrivateAttr(default=None)

    def values(self, table: TableMapping, target: Side) -> dict[str, Any] | None:
        """The typed values to write (rebuilt from ``after`` for a plan read from JSON)."""
        if self._values is not None or self.after is None:
            return self._values
        if target is Side.SERVICE:
            values = table.to_service(table.to_monolith(self.after))
            return {**values, **_copied_values(table, self.after)}
        return table.to_monolith(table.to_service(self.after))


def _copied_values(table: TableMapping, row: dict[str, Any]) -> dict[str, Any]:
    """A service row's copied columns (``copy_of``), as the source row holds them."""
    return {name: row[name] for name in table.copied_columns if name in row}


class RepairPlan(BaseModel):
    """Everything a repair would change."""

    run_id: str
    context: str
    source: Side
    target: Side
    actions: list[RepairAction] = []

    @property
    def direction(self) -> str:
        return f"{self.source}->{self.target}"


def target_for(phase: Phase | str | None, reverse_sync: bool = True) -> Side:
    """The side a repair writes to in ``phase``: the one its source of truth keeps in sync.

    :class:`RepairRefused` when the phase syncs no side (``shared``, or ``split``
    without reverse sync).
    """
    current = Phase(phase) if phase in set(Phase) else None
    if current is not None and current.owns_database:
        target = current.source_of_truth.other
        if target in current.synced_sides(reverse_sync):
            return target
        raise RepairRefused(f"phase {current} without reverse sync: the {target} is not kept")
    shown = None if phase is None else str(phase)
    raise RepairRefused(
        f"phase {shown!r}: the service reads the monolith's tables, there is nothing to repair"
    )


def _jsonable_row(row: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if row is None else {name: jsonable(value) for name, value in row.items()}


def _actions_for(
    table: TableMapping,
    keys: Sequence[Key],
    rows: tuple[Rows, Rows],
    target: Side,
) -> list[RepairAction]:
    monolith_rows, service_rows = rows
    source_rows, target_rows = (
        (monolith_rows, service_rows) if target is Side.SERVICE else (service_rows, monolith_rows)
    )
    convert = table.to_service if target is Side.SERVICE else table.to_monolith
    actions = []
    for key in keys:
        if compare_rows(table, key, monolith_rows.get(key), service_rows.get(key)) is None:
            continue
        source, current = source_rows.get(key), target_rows.get(key)
        if source is None:
            action: Action = "delete"
            desired = None
        else:
            action = "insert" if current is None else "update"
            try:
                desired = convert(source)
            except MappingValueError as exc:
                raise RepairRefused(
                    f"table pair {table.name!r}, key {key!r}: the {target.other}'s row cannot "
                    f"be converted ({exc}); correct it there first"
                ) from exc
            if target is Side.SERVICE:  # the monolith row was read with its copies' values
                desired.update(_copied_values(table, source))
        repair = RepairAction(
            table=table.name,
            key=key,
            action=action,
            before=_jsonable_row(current),
            after=_jsonable_row(desired),
        )
        repair._values = desired
        actions.append(repair)
    return actions


def plan_repair(
    report: Report,
    mapping: ContextMapping,
    monolith_url: str,
    service_url: str,
    *,
    phase: str | None,
    reverse_sync: bool = True,
) -> RepairPlan:
    """What a repair of ``report``'s divergences would write, from rows read now."""
    target = target_for(phase, reverse_sync)
    plan = RepairPlan(
        run_id=report.run_id,
        context=report.context,
        source=target.other,
        target=target,
    )
    monolith, service = engine_for(monolith_url), engine_for(service_url)
    for table_report in report.tables:
        keys = [d.key for d in table_report.divergences if not d.in_flight]
        if not keys:
            continue
        table = mapping.table(table_report.name)
        if table.key.id_map:
            raise RepairRefused(
                f"table pair {table.name!r} keeps an id map (the service makes its own keys): "
                "repair cannot choose the other side's keys; let the relay or the backfill "
                "write these rows"
            )
        sources = {pair.name: pair for pair in mapping.tables}
        pair = inspect_pair(table, monolith, service, sources=sources)
        rows = fetch_keys(pair, monolith, service, keys)
        plan.actions.extend(_actions_for(table, keys, rows, target))
    return plan


def _key_side(side: Side) -> KeySide:
    return "service" if side is Side.SERVICE else "monolith"


def _key_values(mapping: TableMapping, target: Side, key: Key) -> tuple[Any, ...]:
    """The target's key column values of a key as reported (a composite key's text parsed)."""
    if mapping.key.is_composite:
        return mapping.key.values_of(str(key), _key_side(target))
    return (key,)


def _write(
    conn: sa.Connection,
    table: sa.Table,
    key_columns: Sequence[str],
    key_values: Sequence[Any],
    action: RepairAction,
    values: Any,
) -> None:
    key = sa.and_(
        *(table.c[name] == value for name, value in zip(key_columns, key_values, strict=True))
    )
    if action.action == "delete":
        conn.execute(table.delete().where(key))
        return
    updated = conn.execute(table.update().where(key).values(**values))
    if updated.rowcount == 0:
        conn.execute(table.insert().values(**values))


def _source_top(engine: sa.Engine, table: TableMapping, source: Side) -> int | None:
    """The source side's largest id of ``table`` (None: not an integer key)."""
    try:
        with engine.connect() as conn:
            return max_id(conn, getattr(table, f"{source}_table"), getattr(table.key, source))
    except SQLAlchemyError as exc:
        raise DatabaseError(f"repair of {table.name!r}: reading the {source}'s ids: {exc}") from exc


def apply_repair(
    plan: RepairPlan,
    mapping: ContextMapping,
    monolith_url: str,
    service_url: str,
    *,
    batch_size: int = 500,
    audit_url: str | None = None,
) -> int:
    """Write ``plan`` in batches (one transaction each) and audit every row; rows written."""
    engine = engine_for(service_url if plan.target is Side.SERVICE else monolith_url)
    source = engine_for(monolith_url if plan.target is Side.SERVICE else service_url)
    written = 0
    for name in dict.fromkeys(action.table for action in plan.actions):
        table = mapping.table(name)
        target_table = sa.Table(
            getattr(table, f"{plan.target}_table"), sa.MetaData(), autoload_with=engine
        )
        key_columns = table.key.columns(_key_side(plan.target))
        actions = [a for a in plan.actions if a.table == name]
        inserts = any(a.action == "insert" for a in actions) and not table.key.is_composite
        top = _source_top(source, table, plan.source) if inserts else None
        for start in range(0, len(actions), batch_size):
            batch = actions[start : start + batch_size]
            try:
                with engine.begin() as conn:
                    for action in batch:
                        values = action.values(table, plan.target)
                        key_values = _key_values(table, plan.target, action.key)
                        _write(conn, target_table, key_columns, key_values, action, values)
                    if top is not None and any(a.action == "insert" for a in batch):
                        # Never backwards, and past the other side's ids (the backfill's
                        # headroom stays): the two sides never hand out the same id.
                        advance_sequence(conn, target_table.name, key_columns[0], past=top)
            except SQLAlchemyError as exc:
                raise DatabaseError(f"repair of {name!r} failed: {exc}") from exc
            record_repairs(
                [
                    AuditRecord(
                        run_id=plan.run_id,
                        context=plan.context,
                        table=name,
                        key=a.key,
                        action=a.action,
                        direction=plan.direction,
                        before=a.before,
                        after=a.after,
                    )
                    for a in batch
                ],
                audit_url,
            )
            written += len(batch)
    return written
