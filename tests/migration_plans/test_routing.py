"""Phase rules in the route validator, and the route-table rewrite a phase change makes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from migration_plans.control.phase_rules import PlanPhaseRules, PlansOnDisk
from migration_plans.control.plan_file import set_phase
from migration_plans.control.routing import apply_phase_to_routes, render_routes, routes_for_phase
from migration_plans.core.phase import Phase
from migration_plans.core.plan import Plan, load_plans
from migration_plans.core.settings import TEMPLATES_DIR, plans_dir
from migration_plans.core.yamlfile import ConfigError
from strangler_proxy.routetable.loader import load_table, parse_table

EXAMPLE = Path(__file__).resolve().parents[2] / "strangler_proxy" / "examples" / "routes.yaml"

TABLE = """# the team's table
default_upstream: monolith
upstreams:
  monolith: {{url: "http://127.0.0.1:8001"}}
  catalog: {{url: "http://127.0.0.1:8101"}}
contexts:
  catalog:
    routes:
      - name: product-reads   # moved first
        prefix: /api/v1/products/
        methods: [GET, HEAD]
        upstream: catalog
      - name: product-writes
        prefix: /api/v1/products/
        methods: [POST, PUT, PATCH, DELETE]
        upstream: {writes}
      - name: category-reads
        prefix: /api/v1/categories/
        methods: [GET]
        canary:
          split: {{monolith: 90, catalog: 10}}
          sticky: {{header: X-User-ID}}
        fallback: true
"""


def plans_in(phase: Phase) -> dict[str, Plan]:
    plans = load_plans(plans_dir())
    plans["catalog"] = plans["catalog"].model_copy(update={"phase": phase})
    return plans


def write_table(tmp_path: Path, writes: str = "monolith") -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(TABLE.format(writes=writes))
    return path


def test_writes_to_a_service_in_shared_are_rejected_with_the_line(tmp_path: Path) -> None:
    path = write_table(tmp_path, writes="catalog")
    with pytest.raises(ConfigError) as caught:
        load_table(path, phase_rules=PlanPhaseRules(plans_in(Phase.SHARED)))
    [issue] = caught.value.issues
    assert issue.line == 16
    assert issue.field == "contexts.catalog.routes[1].upstream"
    assert "phase 'shared'" in issue.message
    load_table(path, phase_rules=PlanPhaseRules(plans_in(Phase.DUAL_WRITE)))


def test_fallback_in_split_is_rejected(tmp_path: Path) -> None:
    path = write_table(tmp_path, writes="catalog")
    with pytest.raises(ConfigError) as caught:
        load_table(path, phase_rules=PlanPhaseRules(plans_in(Phase.SPLIT)))
    [issue] = caught.value.issues
    assert (issue.line, issue.field) == (23, "contexts.catalog.routes[2].fallback")


def test_advancing_moves_writes_and_keeps_the_rest(tmp_path: Path) -> None:
    path = write_table(tmp_path)
    plans = plans_in(Phase.SHARED)
    apply_phase_to_routes(path, plans["catalog"], Phase.DUAL_WRITE, plans)
    text = path.read_text()
    assert text.startswith("# the team's table\n")
    assert "- name: product-reads   # moved first" in text
    table = load_table(path, phase_rules=PlanPhaseRules(plans_in(Phase.DUAL_WRITE))).table
    routes = {route.name: route for route in table.contexts["catalog"].routes}
    assert routes["product-writes"].upstream == "catalog"
    assert routes["product-reads"].fallback
    assert routes["category-reads"].canary is not None


def test_split_sends_everything_to_the_service_without_fallback(tmp_path: Path) -> None:
    path = write_table(tmp_path)
    plans = plans_in(Phase.DUAL_WRITE)
    apply_phase_to_routes(path, plans["catalog"], Phase.SPLIT, plans)
    table = load_table(path, phase_rules=PlanPhaseRules(plans_in(Phase.SPLIT))).table
    for route in table.contexts["catalog"].routes:
        assert (route.upstream, route.canary, route.fallback) == ("catalog", None, False)


def test_rollback_to_shared_sends_writes_back_to_the_monolith(tmp_path: Path) -> None:
    path = write_table(tmp_path, writes="catalog")
    plans = plans_in(Phase.DUAL_WRITE)
    apply_phase_to_routes(path, plans["catalog"], Phase.SHARED, plans)
    table = load_table(path, phase_rules=PlanPhaseRules(plans_in(Phase.SHARED))).table
    routes = {route.name: route for route in table.contexts["catalog"].routes}
    assert routes["product-writes"].upstream == "monolith"


def test_routes_are_generated_from_the_plan_when_the_context_has_none(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(EXAMPLE.read_text())
    plans = plans_in(Phase.SHARED)
    inventory = plans["inventory"]
    text = routes_for_phase(
        path, inventory.model_copy(update={"phase": Phase.SHARED}), Phase.SHARED
    )
    loaded = parse_table(text, path, phase_rules=PlanPhaseRules(plans))
    # The example's own inventory routes are kept (it has some), so generate into a fresh one:
    assert loaded.table.contexts["inventory"].routes
    bare = tmp_path / "bare.yaml"
    bare.write_text(
        'upstreams:\n  monolith: {url: "http://127.0.0.1:8001"}\n'
        '  inventory: {url: "http://127.0.0.1:8102"}\n'
    )
    apply_phase_to_routes(bare, inventory, Phase.SHARED, plans)
    routes = load_table(bare, phase_rules=PlanPhaseRules(plans)).table.contexts["inventory"].routes
    by_name = {route.name: route for route in routes}
    assert by_name["inventory-stock-reserve-writes"].upstream == "monolith"
    item_reads = by_name["inventory-stock-item-reads"]
    assert item_reads.upstream == "monolith"
    assert item_reads.shadow is not None and item_reads.shadow.upstream == "inventory"


def test_a_rewrite_that_would_not_validate_is_not_written(tmp_path: Path) -> None:
    path = write_table(tmp_path)
    before = path.read_text()
    plans = plans_in(Phase.SHARED)
    broken = plans["catalog"].model_copy(update={"upstream": "nowhere"})
    with pytest.raises(ConfigError, match="after rewrite for dual_write"):
        apply_phase_to_routes(path, broken, Phase.DUAL_WRITE, plans)
    assert path.read_text() == before


def test_plans_on_disk_are_read_at_every_check(tmp_path: Path) -> None:
    plans = tmp_path / "plans"
    plans.mkdir()
    shutil.copy(TEMPLATES_DIR / "catalog.yaml", plans / "catalog.yaml")
    rules = PlansOnDisk(plans)
    path = write_table(tmp_path, writes="catalog")
    with pytest.raises(ConfigError, match="phase 'shared'"):
        load_table(path, phase_rules=rules)
    set_phase(plans / "catalog.yaml", Phase.DUAL_WRITE)
    load_table(path, phase_rules=rules)
    (plans / "catalog.yaml").write_text("context: catalog\n")
    with pytest.raises(ConfigError, match="plan: "):
        load_table(path, phase_rules=rules)


def test_plans_on_disk_refuse_a_missing_plans_folder(tmp_path: Path) -> None:
    path = write_table(tmp_path)
    rules = PlansOnDisk(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"plan: no plans folder at .*strangler plan init"):
        load_table(path, phase_rules=rules)
    (tmp_path / "nowhere").mkdir()
    with pytest.raises(ConfigError, match=r"plan: no plan files in .*strangler plan init"):
        load_table(path, phase_rules=rules)


def test_a_rendered_table_follows_every_phase(tmp_path: Path) -> None:
    upstreams = {
        "monolith": "http://127.0.0.1:8001",
        "catalog": "http://127.0.0.1:8101",
        "inventory": "http://127.0.0.1:8102",
    }
    path = tmp_path / "routes.yaml"
    path.write_text(render_routes(upstreams, load_plans(plans_dir())))
    shared = load_table(path, phase_rules=PlanPhaseRules(load_plans(plans_dir()))).table
    reads = {r.name: r for r in shared.contexts["catalog"].routes}["catalog-products-reads"]
    assert reads.upstream == "monolith"
    assert reads.shadow is not None and reads.shadow.upstream == "catalog"
    for before, after in ((Phase.SHARED, Phase.DUAL_WRITE), (Phase.DUAL_WRITE, Phase.SPLIT)):
        plans = plans_in(before)
        apply_phase_to_routes(path, plans["catalog"], after, plans)
    split = load_table(path, phase_rules=PlanPhaseRules(plans_in(Phase.SPLIT))).table
    for route in split.contexts["catalog"].routes:
        assert (route.upstream, route.shadow, route.fallback) == ("catalog", None, False)
    inventory = {r.name: r for r in split.contexts["inventory"].routes}
    assert inventory["inventory-stock-reserve-writes"].upstream == "monolith"


def test_replicas_are_rendered_as_urls_and_survive_every_rewrite(tmp_path: Path) -> None:
    replicas = ["http://127.0.0.1:8101", "http://127.0.0.1:8111"]
    upstreams = {
        "monolith": "http://127.0.0.1:8001",
        "catalog": replicas,
        "inventory": ["http://127.0.0.1:8102"],
    }
    path = tmp_path / "routes.yaml"
    path.write_text(render_routes(upstreams, load_plans(plans_dir())))
    text = path.read_text()
    assert 'catalog: {urls: ["http://127.0.0.1:8101", "http://127.0.0.1:8111"]}' in text
    assert 'inventory: {url: "http://127.0.0.1:8102"}' in text
    for before, after in ((Phase.SHARED, Phase.DUAL_WRITE), (Phase.DUAL_WRITE, Phase.SPLIT)):
        plans = plans_in(before)
        apply_phase_to_routes(path, plans["catalog"], after, plans)
        assert 'catalog: {urls: ["http://127.0.0.1:8101", "http://127.0.0.1:8111"]}' in (
            path.read_text()
        )
    split = load_table(path, phase_rules=PlanPhaseRules(plans_in(Phase.SPLIT))).table
    assert split.upstreams["catalog"].endpoints == tuple(replicas)
    assert split.upstreams["inventory"].endpoints == ("http://127.0.0.1:8102",)
