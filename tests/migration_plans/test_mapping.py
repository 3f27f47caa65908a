"""The field mapping: round trips in both directions, and refusal of non-invertible mappings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migration_plans.core.mapping import (
    DecimalCentsField,
    MappingValueError,
    TimestampField,
    load_context_mapping,
)
from migration_plans.core.settings import mapping_for
from migration_plans.core.yamlfile import ConfigError

PRODUCTS = mapping_for("catalog").table("products")
RESERVATIONS = mapping_for("inventory").table("reservations")

monolith_products = st.fixed_dictionaries(
    {
        "id": st.integers(min_value=1, max_value=2**62),
        "sku": st.text(min_size=1, max_size=32),
        "name": st.text(max_size=200),
        "description": st.text(),
        "price": st.decimals(
            min_value=Decimal("0"), max_value=Decimal("99999999.99"), places=2, allow_nan=False
        ),
        "is_active": st.booleans(),
        "category_id": st.one_of(st.none(), st.integers(min_value=1, max_value=2**31)),
        "created_at": st.datetimes(timezones=st.just(UTC)),
        "updated_at": st.datetimes(timezones=st.just(UTC)),
    }
)


@given(monolith_products)
def test_product_round_trips_monolith_to_service_and_back(row: dict[str, object]) -> None:
    assert PRODUCTS.to_monolith(PRODUCTS.to_service(row)) == row


@given(
    st.integers(min_value=0, max_value=10**12),
    st.sampled_from(["active", "archived"]),
)
def test_service_values_round_trip_through_the_monolith_form(cents: int, status: str) -> None:
    row = {
        "id": 7,
        "sku": "SKU-7",
        "title": "Lamp",
        "description": "",
        "price_cents": cents,
        "status": status,
        "category_id": None,
        "created_at": None,
        "updated_at": None,
    }
    assert PRODUCTS.to_service(PRODUCTS.to_monolith(row)) == row


def test_decimal_price_and_cents_are_the_same_value() -> None:
    field = DecimalCentsField(monolith="price", service="price_cents", transform="decimal_cents")
    assert field.to_service(Decimal("79.19")) == 7919
    assert field.to_monolith(7919) == Decimal("79.19")
    assert field.to_service(Decimal("79.19")) != 7900


def test_decimal_with_too_many_places_is_refused_naming_the_column() -> None:
    field = DecimalCentsField(monolith="price", service="price_cents", transform="decimal_cents")
    with pytest.raises(MappingValueError, match="price"):
        field.to_service(Decimal("1.005"))


def test_enum_value_outside_the_mapping_is_refused() -> None:
    with pytest.raises(MappingValueError, match="state"):
        RESERVATIONS.to_monolith({"id": 1, "state": "lost"})


def test_timestamps_are_compared_in_utc_at_the_stated_precision() -> None:
    field = TimestampField(monolith="t", service="t", transform="timestamp", precision="ms")
    paris = timezone(timedelta(hours=1))
    local = datetime(2026, 11, 26, 23, 30, 27, 123456, tzinfo=paris)
    assert field.to_service(local) == datetime(2026, 11, 26, 22, 30, 27, 123000, tzinfo=UTC)
    assert field.to_service(datetime(2026, 1, 1)) == datetime(2026, 1, 1, tzinfo=UTC)


def test_nulls_pass_through_every_transform() -> None:
    row = dict.fromkeys(PRODUCTS.monolith_columns)
    row["id"] = 1
    assert PRODUCTS.to_monolith(PRODUCTS.to_service(row)) == row


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return path


def test_enum_with_equal_values_is_not_invertible_and_names_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """context: catalog
tables:
  - name: products
    monolith_table: catalog_product
    service_table: products
    key: {monolith: id, service: id}
    fields:
      - {monolith: sku, service: sku}
      - {monolith: is_active, service: status, transform: bool_enum, true_value: on, false_value: on}
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_context_mapping(path)
    [issue] = caught.value.issues
    assert issue.line == 9
    assert issue.field == "tables[0].fields[1].bool_enum"
    assert "not invertible" in issue.message
    assert str(issue).startswith(f"{path}:9: ")


def test_a_column_mapped_twice_is_not_invertible(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """context: catalog
tables:
  - name: products
    monolith_table: catalog_product
    service_table: products
    key: {monolith: id, service: id}
    fields:
      - {monolith: name, service: title}
      - {monolith: description, service: title}
""",
    )
    with pytest.raises(ConfigError, match="service column 'title' is mapped more than once"):
        load_context_mapping(path)


def test_unknown_transform_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """context: catalog
tables:
  - name: products
    monolith_table: catalog_product
    service_table: products
    key: {monolith: id, service: id}
    fields:
      - {monolith: price, service: price_cents, transform: cents}
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_context_mapping(path)
    assert caught.value.issues[0].line == 8


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "context: catalog\ntables:\n  - name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"plan\.yaml:\d+: YAML syntax"):
        load_context_mapping(path)


def test_unknown_table_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known: categories, products"):
        mapping_for("catalog").table("prices")
