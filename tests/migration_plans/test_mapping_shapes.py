"""The richer field shapes: enum maps, JSON, empty-string policy, user transforms, copies, split tables."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migration_plans.core.mapping import (
    ContextMapping,
    EnumMapField,
    JsonField,
    MappingValueError,
    load_context_mapping,
)
from migration_plans.core.plan import Plan, load_plans
from migration_plans.core.transforms import CENTS_STRING, known_transforms, transform_named
from migration_plans.core.yamlfile import ConfigError

HEAD = """context: library
tables:
  - name: loans
    monolith_table: library_loan
    service_table: loans
    key: {monolith: id, service: id}
    fields:
"""


def load(tmp_path: Path, fields: str, tail: str = "") -> ContextMapping:
    path = tmp_path / "plan.yaml"
    path.write_text(HEAD + textwrap.indent(textwrap.dedent(fields), "      ") + tail)
    return load_context_mapping(path)


def refused(tmp_path: Path, fields: str, tail: str = "") -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, fields, tail)
    return caught.value


STATE = EnumMapField(
    monolith="state",
    service="state",
    transform="enum_map",
    values={"o": "open", "c": "closed", "x": "cancelled", "l": "lost"},
)


@given(st.sampled_from(["o", "c", "x", "l", None]))
def test_enum_map_round_trips_every_value(value: str | None) -> None:
    assert STATE.to_monolith(STATE.to_service(value)) == value


def test_enum_map_converts_both_ways_and_names_an_unknown_value(tmp_path: Path) -> None:
    loans = load(
        tmp_path,
        "- {monolith: state, service: state, transform: enum_map, "
        "values: {o: open, c: closed, x: cancelled}}\n",
    ).table("loans")
    assert loans.to_service({"id": 1, "state": "x"}) == {"id": 1, "state": "cancelled"}
    assert loans.to_monolith({"id": 1, "state": "closed"}) == {"id": 1, "state": "c"}
    with pytest.raises(MappingValueError, match=r"'loans'.*state: 'q' is not a monolith value"):
        loans.to_service({"id": 1, "state": "q"})
    with pytest.raises(MappingValueError, match=r"'loans'.*state: 'lost' is not a service value"):
        loans.to_monolith({"id": 1, "state": "lost"})


def test_enum_map_with_integer_monolith_values(tmp_path: Path) -> None:
    loans = load(
        tmp_path,
        "- {monolith: state, service: state, transform: enum_map, monolith_type: integer, "
        "values: {1: open, 2: closed}}\n",
    ).table("loans")
    assert loans.to_service({"id": 1, "state": 2}) == {"id": 1, "state": "closed"}
    assert loans.to_monolith({"id": 1, "state": "open"}) == {"id": 1, "state": 1}


def test_enum_map_that_is_not_injective_is_refused_at_its_line(tmp_path: Path) -> None:
    error = refused(
        tmp_path,
        "- {monolith: title, service: title}\n"
        "- {monolith: state, service: state, transform: enum_map, values: {o: open, r: open}}\n",
    )
    [issue] = error.issues
    assert issue.line == 9
    assert "not invertible: 'o' and 'r' both map to 'open'" in issue.message


@pytest.mark.parametrize(
    ("monolith_storage", "service_storage", "monolith", "service"),
    [
        ("json", "json", {"b": [1, 2.5], "a": None}, {"b": [1, 2.5], "a": None}),
        ("text", "json", '{"b": [1, 2.5],  "a": null}', {"a": None, "b": [1, 2.5]}),
        ("json", "text", {"b": "ü", "a": 1}, '{"a":1,"b":"ü"}'),
        ("text", "text", '{ "b":1, "a":"x" }', '{"a":"x","b":1}'),
    ],
)
def test_json_is_converted_and_compared_by_value(
    monolith_storage: str, service_storage: str, monolith: object, service: object
) -> None:
    field = JsonField.model_validate(
        {
            "monolith": "meta",
            "service": "meta",
            "transform": "json",
            "monolith_storage": monolith_storage,
            "service_storage": service_storage,
        }
    )
    assert field.to_service(monolith) == service
    assert field.to_service(field.to_monolith(service)) == service


def test_json_text_that_is_not_json_names_the_column() -> None:
    field = JsonField(monolith="meta", service="meta", transform="json", monolith_storage="text")
    with pytest.raises(MappingValueError, match=r"meta: '\{nope' is not valid JSON"):
        field.to_service("{nope")


def test_empty_string_policy_null(tmp_path: Path) -> None:
    loans = load(tmp_path, '- {monolith: notes, service: notes, empty_string: "null"}\n').table(
        "loans"
    )
    assert loans.to_service({"id": 1, "notes": ""}) == {"id": 1, "notes": None}
    assert loans.to_service({"id": 1, "notes": "late"}) == {"id": 1, "notes": "late"}
    assert loans.to_monolith({"id": 1, "notes": None}) == {"id": 1, "notes": ""}
    kept = load(tmp_path, "- {monolith: notes, service: notes}\n").table("loans")
    assert kept.to_service({"id": 1, "notes": ""}) == {"id": 1, "notes": ""}


def test_an_unknown_empty_string_policy_is_refused(tmp_path: Path) -> None:
    error = refused(tmp_path, "- {monolith: notes, service: notes, empty_string: drop}\n")
    assert error.issues[0].line == 8


def test_the_built_in_transform_comes_through_its_entry_point(tmp_path: Path) -> None:
    assert "cents_string" in known_transforms()
    assert transform_named("cents_string") is CENTS_STRING
    loans = load(
        tmp_path,
        "- {monolith: fee, service: fee_cents, transform: custom, name: cents_string, "
        "options: {scale: 2}}\n",
    ).table("loans")
    assert loans.to_service({"id": 1, "fee": "12.30"}) == {"id": 1, "fee_cents": 1230}
    assert loans.to_monolith({"id": 1, "fee_cents": -5}) == {"id": 1, "fee": "-0.05"}
    assert loans.to_service({"id": 1, "fee": None}) == {"id": 1, "fee_cents": None}
    with pytest.raises(MappingValueError, match=r"fee: '1\.234'.*more than 2 decimal places"):
        loans.to_service({"id": 1, "fee": "1.234"})


def test_an_unknown_transform_name_lists_the_known_ones_at_its_line(tmp_path: Path) -> None:
    error = refused(
        tmp_path,
        "- {monolith: title, service: title}\n"
        "- {monolith: isbn, service: isbn, transform: custom, name: isbn99}\n",
    )
    [issue] = error.issues
    assert issue.line == 9
    assert "no transform 'isbn99'" in issue.message
    assert "cents_string" in issue.message


def test_bad_options_of_a_transform_are_refused_at_load(tmp_path: Path) -> None:
    error = refused(
        tmp_path,
        "- {monolith: fee, service: fee, transform: custom, name: cents_string, "
        "options: {scale: many}}\n",
    )
    assert "scale must be an integer" in error.issues[0].message


PLUGIN = '''
class Isbn13:
    """Digits in the monolith, hyphenated in the service (test transform)."""

    def to_service(self, value, options):
        return "-".join([value[:3], value[3:]])

    def to_monolith(self, value, options):
        return value.replace("-", "")

    def sql(self, dialect, column_sql, options):
        return f"substr({column_sql}, 1, 3) || '-' || substr({column_sql}, 4)"

    def samples(self, options):
        return ["9780441013593", "9780000000002"]


class Lossy(Isbn13):
    def to_monolith(self, value, options):
        return value.replace("-", "").upper() + options.get("suffix", "")

    def samples(self, options):
        return ["978044101359x"]


NOT_A_TRANSFORM = object()
'''


@pytest.fixture
def plugin_distribution(tmp_path: Path) -> Iterator[Path]:
    """A distribution on sys.path whose entry points provide three transforms."""
    root = tmp_path / "site"
    info = root / "library_transforms-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: library-transforms\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[strangler.transforms]\n"
        "isbn13 = library_transforms:Isbn13\n"
        "lossy = library_transforms:Lossy\n"
        "broken = library_transforms:NOT_A_TRANSFORM\n"
    )
    (root / "library_transforms.py").write_text(PLUGIN)
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
    sys.modules.pop("library_transforms", None)


@pytest.mark.usefixtures("plugin_distribution")
def test_a_user_transform_is_found_by_its_entry_point(tmp_path: Path) -> None:
    loans = load(
        tmp_path, "- {monolith: isbn, service: isbn, transform: custom, name: isbn13}\n"
    ).table("loans")
    assert loans.to_service({"id": 1, "isbn": "9780441013593"})["isbn"] == "978-0441013593"
    assert loans.to_monolith({"id": 1, "isbn": "978-0441013593"})["isbn"] == "9780441013593"


@pytest.mark.usefixtures("plugin_distribution")
def test_a_transform_failing_its_round_trip_names_the_sample(tmp_path: Path) -> None:
    error = refused(
        tmp_path,
        "- {monolith: title, service: title}\n"
        "- {monolith: isbn, service: isbn, transform: custom, name: lossy}\n",
    )
    [issue] = error.issues
    assert issue.line == 9
    assert "sample '978044101359x' comes back as '978044101359X'" in issue.message


@pytest.mark.usefixtures("plugin_distribution")
def test_an_entry_point_that_is_no_transform_is_refused(tmp_path: Path) -> None:
    error = refused(
        tmp_path, "- {monolith: isbn, service: isbn, transform: custom, name: broken}\n"
    )
    assert "lacks to_service, to_monolith, sql or samples" in error.issues[0].message


def test_cents_string_samples_round_trip() -> None:
    for sample in CENTS_STRING.samples({"scale": 3}):
        assert (
            CENTS_STRING.to_monolith(CENTS_STRING.to_service(sample, {"scale": 3}), {"scale": 3})
            == sample
        )
    assert CENTS_STRING.to_service("0.5", {}) == 50
    assert Decimal(CENTS_STRING.to_monolith(50, {})) == Decimal("0.5")


LIBRARY = """context: library
tables:
  - name: books
    monolith_table: library_book
    service_table: books
    key: {monolith: id, service: id}
    fields:
      - {monolith: title, service: title}
  - name: loans
    monolith_table: library_loan
    service_table: loans
    key: {monolith: id, service: id}
    fields:
      - {monolith: book_id, service: book_id}
      - {service: book_title, copy_of: {table: books, column: title, via: book_id}}
"""


def test_a_copied_column_is_kept_apart_from_the_mapped_fields(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(LIBRARY)
    loans = load_context_mapping(path).table("loans")
    assert [field.service for field in loans.fields] == ["book_id"]
    assert loans.copied_columns == ["book_title"]
    assert loans.copies[0].copy_of.table == "books"
    assert loans.to_service({"id": 1, "book_id": 4}) == {"id": 1, "book_id": 4}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("table: books, column: title, via: book", "via 'book' of 'book_title' is not a mapped"),
        ("table: authors, column: title, via: book_id", "copy_of names pair 'authors'"),
        (
            "table: books, column: name, via: book_id",
            "column 'name' is not a mapped service column",
        ),
    ],
)
def test_a_copy_that_cannot_be_traced_is_refused(tmp_path: Path, change: str, message: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(LIBRARY.replace("table: books, column: title, via: book_id", change))
    with pytest.raises(ConfigError, match=message):
        load_context_mapping(path)


SPLIT = """context: library
tables:
  - name: members
    monolith_table: library_member
    service_table: members
    key: {monolith: id, service: id}
    fields:
      - {monolith: name, service: name}
      - {monolith: email, service: email}
  - name: member_addresses
    monolith_table: library_member
    service_table: member_addresses
    key: {monolith: id, service: member_id}
    fields:
      - {monolith: street, service: street}
"""


def test_a_split_table_feeds_two_pairs(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(SPLIT)
    mapping = load_context_mapping(path)
    pairs = mapping.pairs_of_monolith_table("library_member")
    assert [pair.name for pair in pairs] == ["members", "member_addresses"]
    row = {"id": 3, "name": "Ada", "email": "a@x", "street": "Main"}
    assert pairs[1].to_service(row) == {"member_id": 3, "street": "Main"}
    assert mapping.pairs_of_monolith_table("library_book") == ()


def test_split_pairs_may_not_share_a_monolith_column(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(SPLIT + "      - {monolith: email, service: contact}\n")
    with pytest.raises(ConfigError, match=r"both map monolith column library_member\.email"):
        load_context_mapping(path)


def test_split_pairs_must_share_the_key(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(
        SPLIT.replace(
            "key: {monolith: id, service: member_id}",
            "key: {monolith: street, service: member_id, type: text}",
        ).replace(
            "      - {monolith: street, service: street}\n",
            "      - {monolith: zip, service: zip}\n",
        )
    )
    with pytest.raises(ConfigError, match="different keys"):
        load_context_mapping(path)


def test_a_split_table_read_by_two_contexts_is_refused_at_its_line(tmp_path: Path) -> None:
    plans = tmp_path / "plans"
    plans.mkdir()
    for context, pair in (("members", "members"), ("addresses", "member_addresses")):
        (plans / f"{context}.yaml").write_text(
            f"context: {context}\nservice: {context}\nupstream: {context}\ntables:\n"
            f"  - name: {pair}\n"
            "    monolith_table: library_member\n"
            f"    service_table: {pair}\n"
            "    key: {monolith: id, service: id}\n"
            "    fields:\n"
            f"      - {{monolith: {'name' if context == 'members' else 'street'}, service: x}}\n"
        )
    with pytest.raises(ConfigError) as caught:
        load_plans(plans)
    [issue] = caught.value.issues
    assert issue.path.endswith("members.yaml")
    assert issue.line == 6
    assert "'library_member' is also read by context 'addresses'" in issue.message


def test_the_plan_json_schema_admits_every_shape() -> None:
    """Editors validate plans with the published JSON Schema: a copy_of entry in fields
    and every key form pass it, as they pass the loader."""
    jsonschema = pytest.importorskip("jsonschema")
    plan = {
        "context": "library",
        "service": "library",
        "upstream": "library",
        "tables": [
            {
                "name": "books",
                "monolith_table": "library_book",
                "service_table": "books",
                "key": {"monolith": "id", "service": "id", "service_type": "uuid", "id_map": True},
                "fields": [
                    {"monolith": "title", "service": "title", "empty_string": "null"},
                    {"monolith": "meta", "service": "meta", "transform": "json"},
                    {
                        "monolith": "state",
                        "service": "state",
                        "transform": "enum_map",
                        "values": {"o": "open", "c": "closed"},
                    },
                    {
                        "monolith": "fee",
                        "service": "fee",
                        "transform": "custom",
                        "name": "cents_string",
                    },
                ],
            },
            {
                "name": "loans",
                "monolith_table": "library_loan",
                "service_table": "loans",
                "key": {
                    "monolith": ["branch", "n"],
                    "service": ["branch", "n"],
                    "type": ["integer", "text"],
                },
                "fields": [
                    {"monolith": "book_id", "service": "book_id"},
                    {
                        "service": "book_title",
                        "copy_of": {"table": "books", "column": "title", "via": "book_id"},
                    },
                ],
            },
        ],
    }
    jsonschema.validate(plan, Plan.model_json_schema())
    Plan.model_validate(plan)
    broken = {**plan, "tables": [{**plan["tables"][1], "fields": [{"service": "x"}]}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, Plan.model_json_schema())
