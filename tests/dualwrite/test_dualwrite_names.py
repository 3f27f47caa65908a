"""Names and values from plans in SQL: quoted identifiers, literal values, on both databases.

A mapping whose monolith table has a long name (its trigger names must still fit
PostgreSQL's 63 characters and stay distinct), whose columns are reserved words or
mixed case (they need quoting), and whose enum labels hold quotes and a backslash,
goes through backfill, capture and relay and ends up equal on both sides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dualwrite.backfill import Backfill, service_form_sql
from dualwrite.capture import capture_statements, install_capture, uninstall_statements
from dualwrite.config import Direction, RelaySettings
from dualwrite.relay import Relay
from dualwrite.schema import SERVICE_TABLES
from migration_plans.core.database import sqlalchemy_url
from migration_plans.core.mapping import ContextMapping, TableMapping
from reconciler.runner import ReconcileOptions, reconcile

LONG_TABLE = "legacy_shop_order_lines_kept_for_the_accounting_department_x"
TRUE_LABEL = "it's on"
FALSE_LABEL = "o'ff \\ 'quoted'"

MAPPING = ContextMapping(
    context="shop",
    tables=(
        TableMapping.model_validate(
            {
                "name": "lines",
                "monolith_table": LONG_TABLE,
                "service_table": "Order",
                "key": {"monolith": "id", "service": "id"},
                "fields": [
                    {"monolith": "group", "service": "select"},
                    {
                        "monolith": "is_on",
                        "service": "Status",
                        "transform": "bool_enum",
                        "true_value": TRUE_LABEL,
                        "false_value": FALSE_LABEL,
                    },
                ],
            }
        ),
    ),
)

monolith_metadata = sa.MetaData()
sa.Table(
    LONG_TABLE,
    monolith_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("group", sa.String(40), nullable=True),
    sa.Column("is_on", sa.Boolean, nullable=False),
)
service_metadata = sa.MetaData()
sa.Table(
    "Order",
    service_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("select", sa.String(40), nullable=True),
    sa.Column("Status", sa.String(40), nullable=False),
)
for _table in SERVICE_TABLES:
    _table.to_metadata(service_metadata)


@pytest.fixture(params=["sqlite", "pg"])
def urls(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[sa.Engine, sa.Engine, tuple[str, str]]]:
    if request.param == "sqlite":
        pair = (f"sqlite:///{tmp_path}/monolith.db", f"sqlite:///{tmp_path}/service.db")
    else:
        make: Callable[[str], str] = request.getfixturevalue("pg_database")
        pair = (make("names_m"), make("names_s"))
    monolith, service = (sa.create_engine(sqlalchemy_url(url)) for url in pair)
    monolith_metadata.create_all(monolith)
    service_metadata.create_all(service)
    yield monolith, service, pair
    monolith.dispose()
    service.dispose()


def _rows(engine: sa.Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.exec_driver_sql(sql)]


def test_names_that_need_quoting_and_quoted_enum_labels_round_trip(
    urls: tuple[sa.Engine, sa.Engine, tuple[str, str]],
) -> None:
    monolith, service, (monolith_url, service_url) = urls
    install_capture(monolith, [MAPPING])
    table = f'"{LONG_TABLE}"'
    with monolith.begin() as conn:
        conn.exec_driver_sql(
            f"INSERT INTO {table} (id, \"group\", is_on) VALUES (1, 'a''b', true), (2, NULL, false)"
        )
    settings = RelaySettings(context="shop", monolith_url=monolith_url, service_url=service_url)
    backfill = Backfill(settings, monolith=monolith, service=service, mapping=MAPPING)
    try:
        assert backfill.run(progress=False).finished
    finally:
        backfill.close()
    with monolith.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {table} SET is_on = NOT is_on")
        conn.exec_driver_sql(f"INSERT INTO {table} (id, \"group\", is_on) VALUES (3, 'x', true)")
    relay = Relay(settings, monolith=monolith, service=service, mapping=MAPPING)
    relay.apply_pending(Direction.MONOLITH_TO_SERVICE)

    assert _rows(service, 'SELECT id, "select", "Status" FROM "Order" ORDER BY id') == [
        (1, "a'b", FALSE_LABEL),
        (2, None, TRUE_LABEL),
        (3, "x", TRUE_LABEL),
    ]
    report = reconcile(
        MAPPING,
        monolith_url,
        service_url,
        options=ReconcileOptions(grace_seconds=0.01, create_statistics=False),
    )
    assert report.verdict == "clean", report.model_dump_json(indent=1)


def test_trigger_names_fit_and_stay_distinct_on_postgresql() -> None:
    statements = capture_statements("postgresql", [MAPPING])
    names = {s.split('"')[1] for s in statements if s.startswith("CREATE TRIGGER")}
    assert len(names) == 3 and all(len(name) <= 63 for name in names)  # insert, update, delete
    dropped = {s.split('"')[1] for s in uninstall_statements("postgresql", [MAPPING])}
    assert dropped >= names  # and the row triggers of earlier versions


def test_trigger_sql_quotes_names_and_writes_values_as_literals() -> None:
    mapping = MAPPING.model_copy(update={"context": "o'shop"})
    pg = "\n".join(capture_statements("postgresql", [mapping]))
    assert f'ON "{LONG_TABLE}"' in pg and "context = 'o''shop' AND enabled" in pg
    assert "pg_notify('strangler_outbox', 'o''shop')" in pg and "'lines', key, 'insert'" in pg
    lite = "\n".join(capture_statements("sqlite", [mapping]))
    assert 'NEW."group"' in lite and "'group'" in lite and "context = 'o''shop'" in lite


def test_trigger_sql_runs_on_sqlite_with_a_quote_in_the_context(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/m.db")
    monolith_metadata.create_all(engine)
    install_capture(engine, [MAPPING.model_copy(update={"context": "o'shop"})])
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO strangler_capture VALUES ('o''shop', 1, '2026-01-01')")
        conn.exec_driver_sql(f"INSERT INTO \"{LONG_TABLE}\" VALUES (1, 'g', 1)")
    assert _rows(engine, "SELECT context, aggregate_key FROM strangler_outbox") == [("o'shop", "1")]


def test_backfill_sql_writes_enum_labels_as_literals() -> None:
    rendered = service_form_sql(MAPPING.table("lines"))
    assert rendered[1] == '"group"'
    assert "THEN 'it''s on' ELSE E'o''ff \\\\ ''quoted''' END" in rendered[2]
