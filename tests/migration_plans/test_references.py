"""References between plans: declared on the referencing pair, resolved over the set of plans,
every bad one refused with file:line:field."""

from __future__ import annotations

from pathlib import Path

import pytest

from migration_plans.core.plan import load_plan, load_plans
from migration_plans.core.references import referrers
from migration_plans.core.settings import TEMPLATES_DIR
from migration_plans.core.yamlfile import ConfigError

OWNER = """context: owner
service: owner
upstream: owner
tables:
  - name: things
    monolith_table: owner_thing
    service_table: things
    key: {monolith: id, service: id}
    fields:
      - {monolith: name, service: name}
"""

USER = """context: user
service: user
upstream: user
tables:
  - name: uses
    monolith_table: user_use
    service_table: uses
    key: {monolith: id, service: id}
    fields:
      - {monolith: thing_id, service: thing}
      - {monolith: price, service: price_cents, transform: decimal_cents}
    references:
      - {column: thing, context: %s, table: %s}
"""


def _plans(tmp_path: Path, context: str = "owner", table: str = "things") -> Path:
    (tmp_path / "owner.yaml").write_text(OWNER)
    (tmp_path / "user.yaml").write_text(USER % (context, table))
    return tmp_path


def test_the_shipped_plans_say_who_references_a_product() -> None:
    plans = load_plans(TEMPLATES_DIR)
    found = referrers(plans, "catalog", "products")
    assert [(r.context, r.pair.name, r.service_column, r.monolith_column) for r in found] == [
        ("inventory", "stock_levels", "product_id", "product_id")
    ]
    categories = referrers(plans, "catalog", "categories")
    assert [(r.context, r.pair.name, r.monolith_column) for r in categories] == [
        ("catalog", "products", "category_id")
    ]
    within = referrers(plans, "inventory", "stock_levels")
    assert [(r.context, r.pair.name, r.monolith_column) for r in within] == [
        ("inventory", "reservations", "stock_item_id")
    ]


def test_a_declared_reference_resolves_to_its_referrer(tmp_path: Path) -> None:
    plans = load_plans(_plans(tmp_path))
    (referrer,) = referrers(plans, "owner", "things")
    assert (referrer.context, referrer.service_column, referrer.monolith_column) == (
        "user",
        "thing",
        "thing_id",
    )
    assert referrers(plans, "user", "uses") == ()


@pytest.mark.parametrize(
    ("context", "table", "field", "message"),
    [
        ("nowhere", "things", "context", "unknown context 'nowhere' (plans: owner, user)"),
        ("owner", "thingz", "table", "context 'owner' has no table 'thingz' (known: things)"),
    ],
)
def test_an_unresolved_reference_is_refused_at_its_line(
    tmp_path: Path, context: str, table: str, field: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_plans(_plans(tmp_path, context, table))
    (issue,) = caught.value.issues
    assert Path(issue.path).name == "user.yaml"
    assert (issue.line, issue.field, issue.message) == (
        13,
        f"tables[0].references[0].{field}",
        message,
    )
    assert str(issue).startswith(f"{tmp_path / 'user.yaml'}:13: ")


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("{column: thing_id, context: owner, table: things}", "'thing_id' is not a mapped"),
        ("{column: price_cents, context: owner, table: things}", "never transformed"),
        ("{column: thing, context: owner, table: things, on: x}", "Extra inputs"),
        ('{column: "thing; DROP", context: owner, table: things}', "not a valid SQL name"),
    ],
)
def test_a_bad_reference_is_refused_when_its_plan_loads(
    tmp_path: Path, reference: str, message: str
) -> None:
    path = tmp_path / "user.yaml"
    text = USER % ("owner", "things")
    path.write_text(text.replace("{column: thing, context: owner, table: things}", reference))
    with pytest.raises(ConfigError) as caught:
        load_plan(path)
    (issue,) = caught.value.issues
    assert issue.line is not None and issue.field.startswith("tables[0]")
    assert message in issue.message
