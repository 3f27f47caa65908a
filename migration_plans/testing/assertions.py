"""Parity checks of a phase replay: nothing diverged, no acknowledged write was lost.

    assert_no_divergence(topology, "catalog")   # relay drained, reconciler clean
    assert_no_lost_writes(workload)             # every acked write where the phase says

Rows are found through the context's plan mapping (table pair, key columns, field
names; an id-map pair's other key through the id map), so the checks know no project's
tables.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, Engine, text

from dualwrite.engines import relay_engine
from migration_plans.core.database import sqlalchemy_url
from migration_plans.core.idmap import monolith_keys, service_keys
from migration_plans.core.keys import KeyTextError
from migration_plans.core.keys import Side as KeySide
from migration_plans.core.mapping import TableMapping
from migration_plans.core.phase import Side
from migration_plans.core.plan import Plan
from migration_plans.core.sqlnames import quote_ident
from migration_plans.testing.topology import Topology
from migration_plans.testing.workload import AckedWrite, Workload, WriteCheck
from reconciler.report import Report

__all__ = ["assert_no_divergence", "assert_no_lost_writes"]


def assert_no_divergence(topology: Topology, context: str, *, timeout: float = 90.0) -> Report:
    """The relay drained and a reconciler run over ``context`` is clean.

    Rows with an event still on its way (writes keep coming) are in flight, not
    divergent; divergent rows after the drain fail with the reconciler's findings.
    In ``shared`` the service copy is the one frozen at the last rollback: call this
    before new writes reach the context.
    """
    topology.wait_drained(context, timeout=timeout)
    report = topology.reconcile(context)
    if report.verdict != "clean":
        lines = [f"{context}: reconciler verdict {report.verdict} in {report.phase}"]
        for table in report.tables:
            if table.error or table.divergent:
                lines.append(
                    f"  {table.name}: missing in service {table.missing_in_service}, missing in "
                    f"monolith {table.missing_in_monolith}, differing {table.differing} "
                    f"{table.field_totals} {table.error or ''}"
                )
                lines += [f"    {d.model_dump(mode='json')}" for d in table.divergences[:5]]
        raise AssertionError("\n".join(lines))
    return report


def assert_no_lost_writes(workload: Workload, *, timeout: float = 90.0) -> None:
    """Every acknowledged write is on the source of truth of its context's current phase,
    with its final value, and on the other side while sync runs (dual_write, or split
    with reverse sync). Waits for the relays to drain first.
    """
    topology = workload.topology
    final: dict[tuple[str, str, Any], AckedWrite] = {}
    for write in workload.acked_writes():
        final[(write.context, write.table, write.key)] = write
    problems: list[str] = []
    for context in sorted({write.context for write in final.values()}):
        plan = topology.plan(context)
        if plan.phase.owns_database:
            topology.wait_drained(context, timeout=timeout)
        mine = [w for w in final.values() if w.context == context]
        for side in _sides_to_check(plan):
            problems += _missing(topology, context, side, mine)
    if problems:
        shown = "\n  ".join(problems[:20])
        raise AssertionError(
            f"{len(problems)} acknowledged writes lost or wrong (of {len(final)} checked):\n"
            f"  {shown}"
        )


def _sides_to_check(plan: Plan) -> list[Side]:
    """The phase's source of truth, then the side sync keeps current (if any)."""
    truth = plan.phase.source_of_truth
    synced = plan.phase.synced_sides(plan.reverse_sync)
    return [truth, *(side for side in synced if side is not truth)]


def _missing(topology: Topology, context: str, side: Side, writes: list[AckedWrite]) -> list[str]:
    config = topology.config
    url = config.monolith_db if side is Side.MONOLITH else config.service_dbs[context]
    plan = topology.plan(context)
    engine = relay_engine(sqlalchemy_url(url), pool_size=1)
    keys = _Keys(config.service_dbs[context])
    problems: list[str] = []
    try:
        with engine.connect() as conn:
            for write in writes:
                check = write.check or _row_check(plan, keys)
                problem = check(conn, side, write)
                if problem is not None:
                    problems.append(problem)
    finally:
        engine.dispose()
        keys.close()
    return problems


class _Keys:
    """An acknowledged key as the key columns' values on either side.

    ``AckedWrite.key`` is one value, or a tuple for a composite key. On an ``id_map``
    pair it is the key the answer showed: the monolith's (acknowledged in shared) or the
    service's (a UUID, say); the other side's is looked up in the service database's id
    map (opened on first use).
    """

    def __init__(self, service_url: str) -> None:
        self.service_url = service_url
        self._engine: Engine | None = None

    def values(self, pair: TableMapping, side: Side, key: Any) -> tuple[Any, ...] | None:
        """The key columns' values of ``key`` on ``side`` (None: the id map has none)."""
        values = tuple(key) if isinstance(key, tuple | list) else (key,)
        if not pair.key.id_map:
            return values
        acked = _acked_side(pair, values[0])
        text_of = pair.key.text_of(values, acked)
        if acked == side.value:
            return pair.key.values_of(text_of, acked)
        lookup = service_keys if acked == Side.MONOLITH.value else monolith_keys
        with self._connect() as conn:
            found = lookup(conn, pair.name, [text_of]).get(text_of)
        return None if found is None else pair.key.values_of(found, side.value)

    def _connect(self) -> Connection:
        if self._engine is None:
            self._engine = relay_engine(sqlalchemy_url(self.service_url), pool_size=1)
        return self._engine.connect()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def _acked_side(pair: TableMapping, value: Any) -> KeySide:
    """Which side's key an id-map pair's acknowledged key is (the service's if it parses)."""
    try:
        pair.key.values_of(str(value), "service")
    except KeyTextError:
        return "monolith"
    return "service"


def _row_check(plan: Plan, keys: _Keys) -> WriteCheck:
    """A check of one mapped row: found by its key (every key column; an id-map pair's
    through the id map), its fields compared in monolith form."""

    def check(conn: Connection, side: Side, write: AckedWrite) -> str | None:
        pair = plan.mapping.table(write.table)
        table = pair.service_table if side is Side.SERVICE else pair.monolith_table
        values = keys.values(pair, side, write.key)
        if values is None:
            return f"{side}: {write.table} {write.key} ({write.phase}) not in the id map"
        # The key's text on both sides (every column; a UUID as SQLite or PostgreSQL keeps it)
        key_sql = pair.key.text_sql(None, conn.dialect.name, side.value)
        query = text(f"SELECT * FROM {quote_ident(table)} WHERE {key_sql} = :key")
        key_text = pair.key.text_of(values, side.value)
        row = conn.execute(query, {"key": key_text}).mappings().first()
        if row is None:
            return f"{side}: {write.table} {write.key} ({write.phase}) missing"
        image = dict(row) if side is Side.MONOLITH else pair.to_monolith(dict(row))
        wrong = {
            name: (image.get(name), value)
            for name, value in write.expected.items()
            if _normal(image.get(name)) != _normal(value)
        }
        if wrong:
            return f"{side}: {write.table} {write.key} ({write.phase}) has/acked {wrong}"
        return None

    return check


def _normal(value: Any) -> Any:
    """Compare ``Decimal('12.50')``, ``'12.50'`` and ``12.5`` as equal; booleans as booleans."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value)).normalize()
    if isinstance(value, str):
        try:
            return Decimal(value).normalize()
        except InvalidOperation:
            return value
    return value
