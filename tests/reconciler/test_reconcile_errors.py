"""Bad input fails with a clear error before any scan starts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from migration_plans.core.mapping import ContextMapping, TableMapping
from migration_plans.core.settings import mapping_for
from reconciler import segment
from reconciler.config import load_context_plan
from reconciler.exceptions import (
    DatabaseError,
    KeyTypeMismatch,
    MissingColumn,
    MissingPrimaryKey,
    MissingTable,
    UnknownContext,
)
from reconciler.runner import ReconcileOptions, reconcile
from tests.reconciler.reconcile_tables import Pair, engine

MakePair = Callable[[str], Pair]


@pytest.fixture(autouse=True)
def no_scans(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Any scan fails the test: errors must come first."""
    calls: list[Any] = []

    def forbidden(*args: Any, **kwargs: Any) -> None:
        calls.append(args)
        raise AssertionError("a scan started before the input was checked")

    monkeypatch.setattr(segment, "run_segment", forbidden)
    monkeypatch.setattr("reconciler.runner.run_segment", forbidden)
    yield calls


def _with_products(pair: Pair, **changes: Any) -> ContextMapping:
    products = pair.mapping.table("products").model_copy(update=changes)
    return ContextMapping(context="catalog", tables=(pair.mapping.table("categories"), products))


def test_unknown_context_names_the_known_ones() -> None:
    with pytest.raises(UnknownContext, match=r"unknown context 'catalogue'.*catalog"):
        load_context_plan("catalogue")


@pytest.mark.parametrize("backend", ["sqlite", "pg"])
def test_mapping_that_references_a_missing_column(
    make_pair: MakePair, fast_options: ReconcileOptions, backend: str
) -> None:
    pair = make_pair(backend)
    products = pair.mapping.table("products")
    data = products.model_dump()
    data["fields"][1]["service"] = "name"  # the service calls it title
    mapping = _with_products(pair, fields=TableMapping.model_validate(data).fields)
    with pytest.raises(MissingColumn, match="service table 'products' has no column 'name'"):
        reconcile(mapping, pair.monolith_url, pair.service_url, options=fast_options)


def test_missing_table(make_pair: MakePair, fast_options: ReconcileOptions) -> None:
    pair = make_pair("sqlite")
    mapping = _with_products(pair, service_table="product")
    with pytest.raises(MissingTable, match="service table 'product' does not exist"):
        reconcile(mapping, pair.monolith_url, pair.service_url, options=fast_options)


@pytest.mark.parametrize("backend", ["sqlite", "pg"])
def test_table_without_primary_key(
    make_pair: MakePair, fast_options: ReconcileOptions, backend: str
) -> None:
    pair = make_pair(backend)
    with engine(pair.service_url).begin() as conn:
        conn.execute(sa.text("CREATE TABLE products_copy AS SELECT * FROM products"))
    mapping = _with_products(pair, service_table="products_copy")
    with pytest.raises(MissingPrimaryKey, match="'products_copy' has no primary key"):
        reconcile(mapping, pair.monolith_url, pair.service_url, options=fast_options)


@pytest.mark.parametrize("backend", ["sqlite", "pg"])
def test_mismatched_key_types(
    make_pair: MakePair, fast_options: ReconcileOptions, backend: str
) -> None:
    pair = make_pair(backend)
    with engine(pair.service_url).begin() as conn:
        conn.execute(
            sa.text("CREATE TABLE products_uuid (id VARCHAR(36) PRIMARY KEY, sku VARCHAR(64))")
        )
    mapping = ContextMapping.model_validate(
        {
            "context": "catalog",
            "tables": [
                {
                    "name": "products",
                    "monolith_table": "catalog_product",
                    "service_table": "products_uuid",
                    "key": {"monolith": "id", "service": "id"},
                    "fields": [{"monolith": "sku", "service": "sku"}],
                }
            ],
        }
    )
    with pytest.raises(KeyTypeMismatch, match=r"key types differ .monolith int, service text"):
        reconcile(mapping, pair.monolith_url, pair.service_url, options=fast_options)


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="must divide"):
        ReconcileOptions(levels=(1000, 32))


def test_missing_sqlite_file_is_not_created(tmp_path: Path, fast_options: ReconcileOptions) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(DatabaseError, match="does not exist"):
        reconcile(mapping_for("catalog"), f"sqlite:///{missing}", f"sqlite:///{missing}")
    assert not missing.exists()
