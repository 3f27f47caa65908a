"""Names in the reconciler's SQL are quoted, the extended statistics' ANALYZE included."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from migration_plans.core.mapping import ColumnPair, IdentityField, TableMapping
from reconciler.connections import engine_for
from reconciler.runner import ensure_statistics
from reconciler.schema import inspect_pair


@pytest.mark.usefixtures("pg_urls")
def test_statistics_and_analyze_quote_a_table_name_that_needs_it(
    pg_urls: tuple[str, str],
) -> None:
    odd = 'Odd "Table'
    for url in pg_urls:
        with engine_for(url).begin() as conn:
            conn.exec_driver_sql('CREATE TABLE "Odd ""Table" (id bigint PRIMARY KEY, v text)')
            conn.exec_driver_sql(
                """INSERT INTO "Odd ""Table" SELECT i, 'v' FROM generate_series(1, 100) i"""
            )
    # Plans refuse such a name; a mapping built in code can still carry one.
    mapping = TableMapping.model_construct(
        name="odd",
        monolith_table=odd,
        service_table=odd,
        key=ColumnPair(monolith="id", service="id"),
        fields=(IdentityField(monolith="v", service="v"),),
    )
    engine = engine_for(pg_urls[0])
    pair = inspect_pair(mapping, engine, engine_for(pg_urls[1]))
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        note = ensure_statistics(engine, pair, "monolith", 64, -1)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert note.startswith("monolith: created statistics"), note
    assert 'ANALYZE "Odd ""Table"' in seen
