"""``assert_no_lost_writes`` on the library's shapes, without a stack: a composite key is
matched on every column, and an id-map pair's row is found on the other side through the
id map (the service's UUID in the monolith, the monolith's id in the service)."""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, insert

from extracted_services.common.migrations import upgrade
from migration_plans.core.database import sqlalchemy_url
from migration_plans.core.idmap import record
from migration_plans.core.phase import Phase
from migration_plans.core.plan import Plan, load_plan
from migration_plans.testing import AckedWrite, assert_no_lost_writes
from tests.library.conftest import SERVICE_MODULE, manage
from tests.library.services.lending.models import Copy, Loan

LOAN = uuid.UUID("0b0e5a8e-6c1d-4f6e-9b1a-2d3c4e5f6a7b")


@pytest.fixture(scope="module")
def monolith_template(tmp_path_factory: pytest.TempPathFactory, library_plans: Path) -> Path:
    path = tmp_path_factory.mktemp("lost-writes") / "library.sqlite3"
    manage(f"sqlite:///{path}", "migrate", "--no-input", plans=library_plans)
    manage(f"sqlite:///{path}", "seed_library", "--seed", "7", plans=library_plans)
    return path


@dataclass
class _Config:
    monolith_db: str
    service_dbs: dict[str, str]


@dataclass
class _Topology:
    """What the check reads of a topology: the databases and the plan (no processes)."""

    config: _Config
    plans: dict[str, Plan]

    def plan(self, context: str) -> Plan:
        return self.plans[context]

    def wait_drained(self, context: str, *, timeout: float = 90.0) -> None:
        """Nothing relays here: the rows are written where the test wants them."""


@dataclass
class _Workload:
    topology: _Topology
    writes: list[AckedWrite]
    refused: Counter[str] = field(default_factory=Counter)

    def acked_writes(self) -> list[AckedWrite]:
        return self.writes


@pytest.fixture
def topology(monolith_template: Path, tmp_path: Path, library_plans: Path) -> _Topology:
    """Seeded monolith; a service database holding loan 4 as LOAN (mapped) and copy CEN/1/1
    in dual_write."""
    monolith = tmp_path / "library.sqlite3"
    shutil.copyfile(monolith_template, monolith)
    service = f"sqlite:///{tmp_path / 'lending.sqlite3'}"
    upgrade("lending", service, module=SERVICE_MODULE)
    engine = create_engine(sqlalchemy_url(service))
    moment = datetime(2026, 1, 8, 9, 30, 0, 123459, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(Loan).values(
                id=LOAN, member_id=1, isbn="9780000000001", branch_code="CEN", status="returned",
                meta={}, notes=None, borrowed_at=moment, due_at=moment,
            )
        )  # fmt: skip
        conn.execute(
            insert(Copy).values(
                branch_code="CEN", isbn="9780000000001", copy_no=1, condition="damaged",
                shelved_at=moment,
            )
        )  # fmt: skip
        record(conn, "loans", [("4", str(LOAN))])
    engine.dispose()
    plan = load_plan(library_plans / "lending.yaml").model_copy(update={"phase": Phase.DUAL_WRITE})
    return _Topology(_Config(f"sqlite:///{monolith}", {"lending": service}), {"lending": plan})


def _check(topology: _Topology, *writes: AckedWrite) -> str:
    try:
        assert_no_lost_writes(_Workload(topology, list(writes)))  # type: ignore[arg-type]
    except AssertionError as exc:
        return str(exc)
    return ""


def _write(table: str, key: Any, expected: dict[str, Any]) -> AckedWrite:
    return AckedWrite("lending", table, key, expected, "dual_write")


def test_an_id_map_key_is_found_on_both_sides(topology: _Topology) -> None:
    # seeded loan 4 is status 'l' in the monolith; the service copy says returned ('r')
    found = _check(topology, _write("loans", str(LOAN), {"status": "l"}))
    assert "service: loans" in found and "'status': ('r', 'l')" in found, found
    assert "monolith: loans" not in found, found
    by_monolith_id = _check(topology, _write("loans", 4, {"status": "l"}))
    assert (
        "service: loans 4" in by_monolith_id and "monolith" not in by_monolith_id.split("\n", 1)[1]
    ), by_monolith_id


def test_an_unmapped_key_is_reported(topology: _Topology) -> None:
    unknown = str(uuid.uuid4())
    found = _check(topology, _write("loans", unknown, {"status": "o"}))
    assert f"monolith: loans {unknown} (dual_write) not in the id map" in found, found
    assert f"service: loans {unknown} (dual_write) missing" in found, found


def test_a_composite_key_is_matched_on_every_column(topology: _Topology) -> None:
    seeded = _check(topology, _write("copies", ("CEN", "9780000000001", 1), {"condition": "d"}))
    assert "monolith: copies" in seeded and "service: copies" not in seeded, seeded
    other_copy = _check(topology, _write("copies", ("CEN", "9780000000001", 2), {"condition": "d"}))
    assert "service: copies ('CEN', '9780000000001', 2) (dual_write) missing" in other_copy
