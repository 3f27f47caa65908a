"""The reconciler's scans keep to one backend a side unless parallel workers are asked for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.connections import snapshot
from reconciler.runner import ReconcileOptions, reconcile
from reconciler.schema import inspect_pair
from reconciler.segment import SideReader
from tests.reconciler.reconcile_tables import Pair

MakePair = Callable[[str], Pair]

SHOW = "SHOW max_parallel_workers_per_gather"


@pytest.mark.parametrize("workers", [0, 3])
def test_a_side_reader_sets_parallel_workers_for_its_snapshot_only(
    make_pair: MakePair, workers: int
) -> None:
    pair = make_pair("pg")
    schema = inspect_pair(pair.mapping.table("products"), pair.monolith, pair.service)
    with pair.monolith.connect() as conn:
        server_default = conn.exec_driver_sql(SHOW).scalar()
    with snapshot(pair.monolith) as conn:
        SideReader(schema, "monolith", conn, workers)
        assert conn.exec_driver_sql(SHOW).scalar() == str(workers)
    with pair.monolith.connect() as conn:
        assert conn.exec_driver_sql(SHOW).scalar() == server_default


def test_parallel_workers_find_the_same_divergences(
    make_pair: MakePair, fast_options: ReconcileOptions
) -> None:
    pair = make_pair("pg")
    pair.seed(600)
    pair.execute("service", sa.text("DELETE FROM products WHERE id IN (5, 400)"))
    pair.execute("monolith", sa.text("UPDATE catalog_product SET name = 'x' WHERE id = 77"))
    found = []
    for workers in (0, 2):
        options = replace(fast_options, parallel_workers=workers)
        table = reconcile(pair.mapping, pair.monolith_url, pair.service_url, options=options)
        found.append({d.key: d.kind.value for d in table.table("products").divergences})
    assert (
        found[0]
        == found[1]
        == {
            5: "missing_in_service",
            77: "differing",
            400: "missing_in_service",
        }
    )


@pytest.mark.parametrize("workers", [-1, 65])
def test_parallel_workers_out_of_bounds_are_refused(workers: int) -> None:
    with pytest.raises(ValueError, match="parallel_workers must be 0 to 64"):
        ReconcileOptions(parallel_workers=workers)
    result = CliRunner().invoke(app, ["catalog", "--parallel-workers", str(workers)])
    assert result.exit_code == 2
    assert "--parallel-workers" in result.stderr
