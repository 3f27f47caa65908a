"""Plan files: the shipped plans load; bad plans are refused with file:line:field."""

from __future__ import annotations

from pathlib import Path

import pytest

from migration_plans.control.plan_file import set_phase
from migration_plans.core.phase import Phase
from migration_plans.core.plan import Gate, load_plan, load_plans
from migration_plans.core.settings import mapping_for, plan_path, plans_dir
from migration_plans.core.yamlfile import ConfigError


def test_shipped_plans_load_and_share_the_mapping() -> None:
    plans = load_plans(plans_dir())
    assert set(plans) >= {"catalog", "inventory"}
    for context, plan in plans.items():
        assert plan.mapping == mapping_for(context)


def test_phases_are_ordered() -> None:
    assert Phase.SHARED.next is Phase.DUAL_WRITE
    assert Phase.DUAL_WRITE.next is Phase.SPLIT
    assert Phase.SPLIT.next is None
    assert Phase.SPLIT.previous is Phase.DUAL_WRITE
    assert Phase.DUAL_WRITE.monolith_is_current and not Phase.SPLIT.monolith_is_current


@pytest.mark.parametrize(
    ("gate", "observed", "samples", "expected"),
    [
        (Gate(metric="shadow_match_rate", op=">=", value=0.999, min_samples=1000), 1.0, 999, False),
        (
            Gate(metric="shadow_match_rate", op=">=", value=0.999, min_samples=1000),
            0.999,
            1000,
            True,
        ),
        (Gate(metric="dead_letters", op="==", value=0), 0, None, True),
        (Gate(metric="dead_letters", op="==", value=0), 1, None, False),
        (Gate(metric="relay_lag_p99_ms", op="<", value=500), None, None, False),
    ],
)
def test_gate_holds(
    gate: Gate, observed: float | None, samples: int | None, expected: bool
) -> None:
    assert gate.holds(observed, samples) is expected


def test_bad_plan_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(
        """context: catalog
service: catalog
upstream: catalog
phase: half_done
endpoints:
  - {path: /api/v1/products/, methods: [GET, FETCH]}
tables: []
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_plan(path)
    lines = {(issue.line, issue.field) for issue in caught.value.issues}
    assert (4, "phase") in lines
    assert (6, "endpoints[0].methods") in lines


def test_load_plans_reports_every_broken_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("context: a\n")
    (tmp_path / "b.yaml").write_text("context: b\n")
    with pytest.raises(ConfigError) as caught:
        load_plans(tmp_path)
    assert {Path(issue.path).name for issue in caught.value.issues} == {"a.yaml", "b.yaml"}


def test_set_phase_keeps_comments_and_the_rest_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    original = plan_path("catalog").read_text()
    path.write_text(original)
    plan = set_phase(path, Phase.DUAL_WRITE)
    assert plan.phase is Phase.DUAL_WRITE
    rewritten = path.read_text()
    assert rewritten == original.replace("phase: shared", "phase: dual_write")


def test_plan_with_an_injecting_table_or_column_name_is_refused_with_its_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(
        """context: catalog
service: catalog
upstream: catalog
tables:
  - name: products
    monolith_table: "catalog_product\\" FOR EACH ROW EXECUTE FUNCTION evil(); --"
    service_table: products
    key: {monolith: id, service: "id; DROP TABLE products"}
    fields:
      - {monolith: sku, service: sku}
      - {monolith: "name') || pg_sleep(1) || ('", service: title}
      - {monolith: is_active, service: status, transform: bool_enum,
         true_value: "it's on", false_value: "off"}
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_plan(path)
    found = {(issue.line, issue.field) for issue in caught.value.issues}
    assert found == {
        (6, "tables[0].monolith_table"),
        (8, "tables[0].key.service"),
        (11, "tables[0].fields[1].identity.monolith"),
    }
    assert all("not a valid SQL name" in issue.message for issue in caught.value.issues)
    assert str(caught.value).startswith(f"{path}:6: tables[0].monolith_table: ")
