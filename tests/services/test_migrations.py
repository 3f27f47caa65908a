"""Alembic: upgrade/downgrade round trips, models match migrations, offline SQL, outbox shape."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from typer.testing import CliRunner

from dualwrite.schema import service_side_metadata
from extracted_services.catalog.models import Base as CatalogBase
from extracted_services.cli import app as service_cli
from extracted_services.common.database import service_engine
from extracted_services.common.migrations import alembic_config, current, downgrade, upgrade
from extracted_services.inventory.models import Base as InventoryBase
from extracted_services.payments.models import Base as PaymentsBase
from migration_plans.core.outbox import outbox_table

METADATA = {
    "catalog": CatalogBase.metadata,
    "inventory": InventoryBase.metadata,
    "payments": PaymentsBase.metadata,
}
TABLES = {
    "catalog": {"categories", "products", "strangler_outbox"},
    "inventory": {"warehouses", "stock_levels", "reservations", "strangler_outbox"},
    "payments": {"payments", "strangler_outbox"},
}


def head(context: str) -> str | None:
    """The newest revision of ``context`` (other packages may add revisions after ours)."""
    return ScriptDirectory.from_config(alembic_config(context, "sqlite://")).get_current_head()


def table_names(url: str) -> set[str]:
    engine = service_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


@pytest.mark.parametrize("context", ["catalog", "inventory", "payments"])
def test_upgrade_downgrade_round_trip(tmp_path, pg_database, backend, context):
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'svc.sqlite3'}"
    else:
        url = pg_database(f"mig_{context}")
    upgrade(context, url)
    assert current(context, url) == head(context)
    assert table_names(url) >= TABLES[context]
    engine = service_engine(url)
    with engine.connect() as conn:
        diffs = compare_metadata(
            MigrationContext.configure(conn), [METADATA[context], service_side_metadata()]
        )
    engine.dispose()
    assert [d for d in diffs if d[0] not in {"add_index", "remove_index"}] == []
    downgrade(context, url, "base")
    assert current(context, url) is None and table_names(url) == set()
    upgrade(context, url)
    assert table_names(url) >= TABLES[context]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_service_outbox_has_the_shared_outbox_columns(databases):
    url = databases.service("inventory")
    engine = service_engine(url)
    columns = {c["name"]: c for c in inspect(engine).get_columns("strangler_outbox")}
    engine.dispose()
    assert set(columns) == {c.name for c in outbox_table.columns}
    assert all(columns[c.name]["nullable"] == c.nullable for c in outbox_table.columns)


def test_offline_sql_generation_from_the_cli():
    runner = CliRunner()
    result = runner.invoke(service_cli, ["migrate", "catalog", "--sql"])
    assert result.exit_code == 0, result.output
    assert "CREATE TABLE products" in result.output
    assert "CREATE TABLE strangler_outbox" in result.output
    assert "price_cents BIGINT NOT NULL" in result.output
    down = runner.invoke(
        service_cli,
        ["downgrade", "inventory", "--sql", "--revision", "head:base"],
    )
    assert down.exit_code == 0, down.output
    assert "DROP TABLE reservations" in down.output


def test_cli_migrate_reads_the_context_database_url(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'inventory.sqlite3'}"
    monkeypatch.setenv("INVENTORY_DATABASE_URL", url)
    result = CliRunner().invoke(service_cli, ["migrate", "inventory"])
    assert result.exit_code == 0, result.output
    assert current("inventory", url) == head("inventory")
    result = CliRunner().invoke(service_cli, ["downgrade", "inventory", "--revision", "base"])
    assert result.exit_code == 0, result.output
    assert current("inventory", url) is None


def test_the_cli_migrates_payments_and_prints_its_sql(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'payments.sqlite3'}"
    monkeypatch.setenv("PAYMENTS_DATABASE_URL", url)
    result = CliRunner().invoke(service_cli, ["migrate", "payments"])
    assert result.exit_code == 0, result.output
    assert current("payments", url) == head("payments")
    printed = CliRunner().invoke(service_cli, ["migrate", "payments", "--sql"])
    assert printed.exit_code == 0, printed.output
    assert "CREATE TABLE payments" in printed.output
