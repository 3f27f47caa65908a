"""Keys of a pair: integer, text, uuid, composite and id-mapped; the key text in Python and SQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from migration_plans.core.database import sqlalchemy_url
from migration_plans.core.keys import KeyTextError
from migration_plans.core.mapping import (
    CompositeKeyError,
    KeyMapping,
    KeyType,
    TableMapping,
    load_context_mapping,
)
from migration_plans.core.yamlfile import ConfigError

COMPOSITE = KeyMapping(
    monolith=["branch_id", "isbn"], service=["branch", "isbn"], type=["integer", "text"]
)
TEXT_PARTS = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
)


def plan(
    tmp_path: Path, key: str, fields: str = "      - {monolith: title, service: title}\n"
) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(
        "context: library\n"
        "tables:\n"
        "  - name: copies\n"
        "    monolith_table: library_copy\n"
        "    service_table: copies\n"
        f"    key: {key}\n"
        "    fields:\n" + fields
    )
    return path


def test_an_integer_key_is_read_as_before(tmp_path: Path) -> None:
    table = load_context_mapping(plan(tmp_path, "{monolith: id, service: copy_id}")).table("copies")
    assert table.key.monolith == "id"
    assert table.key.service == "copy_id"
    assert table.key.types == (KeyType.INTEGER,)
    assert not table.key.is_composite
    assert table.to_service({"id": 7, "title": "Dune"}) == {"copy_id": 7, "title": "Dune"}
    assert table.key.text_of((7,)) == "7"


def test_a_composite_key_lists_its_columns_and_types(tmp_path: Path) -> None:
    key = "{monolith: [branch_id, isbn], service: [branch, isbn], type: [integer, text]}"
    table = load_context_mapping(plan(tmp_path, key)).table("copies")
    assert table.key.monolith_columns == ("branch_id", "isbn")
    assert table.key.service_columns == ("branch", "isbn")
    assert table.key.types == (KeyType.INTEGER, KeyType.TEXT)
    assert table.key.is_composite
    row = {"branch_id": 3, "isbn": "978-0", "title": "Dune"}
    assert table.monolith_key(row) == (3, "978-0")
    service_row = table.to_service(row)
    assert service_row == {"branch": 3, "isbn": "978-0", "title": "Dune"}
    assert table.service_key(service_row) == (3, "978-0")
    assert table.to_monolith(service_row) == row
    assert table.monolith_columns == ["branch_id", "isbn", "title"]


def test_a_composite_key_refuses_single_column_callers_naming_the_pair() -> None:
    with pytest.raises(
        CompositeKeyError,
        match=r"\(branch_id, isbn\) <-> \(branch, isbn\).*single-column keys only",
    ):
        COMPOSITE.monolith  # noqa: B018
    with pytest.raises(ValueError):
        COMPOSITE.service  # noqa: B018


def test_one_type_applies_to_every_column(tmp_path: Path) -> None:
    key = "{monolith: [a, b], service: [a, b], type: text}"
    table = load_context_mapping(plan(tmp_path, key)).table("copies")
    assert table.key.types == (KeyType.TEXT, KeyType.TEXT)


def test_an_id_mapped_key_leaves_the_key_to_the_id_map(tmp_path: Path) -> None:
    key = "{monolith: id, service: id, service_type: uuid, id_map: true}"
    table = load_context_mapping(plan(tmp_path, key)).table("copies")
    assert table.key.id_map
    assert table.key.types == (KeyType.INTEGER,)
    assert table.key.service_types == (KeyType.UUID,)
    assert table.to_service({"id": 7, "title": "Dune"}) == {"title": "Dune"}
    assert table.to_monolith({"id": uuid.uuid4(), "title": "Dune"}) == {"title": "Dune"}
    assert table.convert_fields_only({"id": 7, "title": "Dune"}, to="service") == {"title": "Dune"}
    service_id = uuid.UUID("5f0c1a5e-4b1d-4c51-9a57-0a1b2c3d4e5f")
    assert table.key.text_of((service_id,), side="service") == str(service_id)
    assert table.key.values_of(str(service_id), side="service") == (service_id,)


@pytest.mark.parametrize(
    ("key", "line", "message"),
    [
        ("{monolith: [a, b], service: [a]}", 6, "2 monolith column(s)"),
        ("{monolith: [a, b], service: [a, b], type: [integer]}", 6, "1 types for 2 key columns"),
        (
            "{monolith: code, service: code, type: string}",
            6,
            "unknown key type 'string' (known: integer, text, uuid)",
        ),
        (
            "{monolith: [a, b], service: [a, b], id_map: true}",
            6,
            "id_map: true needs a single-column key",
        ),
        (
            "{monolith: [a, a], service: [a, b]}",
            6,
            "monolith key column a is listed more than once",
        ),
        ("{monolith: id, service: id, service_type: uuid}", 6, "without id_map: true"),
        ("{monolith: id, service: title}", 3, "service column 'title' is mapped more than once"),
    ],
)
def test_an_invalid_key_is_refused_at_its_line(
    tmp_path: Path, key: str, line: int, message: str
) -> None:
    path = plan(tmp_path, key)
    with pytest.raises(ConfigError) as caught:
        load_context_mapping(path)
    [issue] = caught.value.issues
    assert message in issue.message
    assert issue.line == line
    assert str(issue).startswith(f"{path}:{line}: ")


def test_a_bad_column_name_in_a_key_list_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'a b' is not a valid SQL name"):
        load_context_mapping(plan(tmp_path, '{monolith: [x, "a b"], service: [x, y]}'))


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1), TEXT_PARTS)
def test_composite_key_text_reads_back(branch: int, isbn: str) -> None:
    text = COMPOSITE.text_of((branch, isbn))
    assert COMPOSITE.values_of(text) == (branch, isbn)


@given(st.tuples(TEXT_PARTS, TEXT_PARTS), st.tuples(TEXT_PARTS, TEXT_PARTS))
def test_distinct_composite_keys_have_distinct_texts(
    first: tuple[str, str], second: tuple[str, str]
) -> None:
    key = KeyMapping(monolith=["a", "b"], service=["a", "b"], type="text")
    assert (key.text_of(first) == key.text_of(second)) == (first == second)


def test_separators_and_escapes_in_parts_do_not_collide() -> None:
    key = KeyMapping(monolith=["a", "b"], service=["a", "b"], type="text")
    assert key.text_of(("a|", "b")) != key.text_of(("a", "|b"))
    assert key.text_of(("a\\", "b")) != key.text_of(("a\\|b", ""))


def test_single_column_key_text_is_str_of_the_value() -> None:
    key = KeyMapping(monolith="code", service="code", type="text")
    assert key.text_of(("a|b\\c",)) == "a|b\\c"
    assert key.values_of("a|b\\c") == ("a|b\\c",)


def test_key_text_that_does_not_fit_the_key_is_refused() -> None:
    with pytest.raises(KeyTextError, match="has 1 part"):
        COMPOSITE.values_of("3")
    with pytest.raises(KeyTextError, match="'x' is not integer"):
        COMPOSITE.values_of("x|y")
    with pytest.raises(KeyTextError, match="unpaired"):
        COMPOSITE.values_of("3|y\\")
    with pytest.raises(KeyTextError, match="NULL"):
        COMPOSITE.text_of((3, None))


def test_generated_sql_holds_no_percent_sign() -> None:
    for dialect in ("postgresql", "sqlite"):
        assert "%" not in COMPOSITE.text_sql("t", dialect)
        uuid_key = KeyMapping(monolith=["u", "n"], service=["u", "n"], type=["uuid", "integer"])
        assert "%" not in uuid_key.text_sql(None, dialect)


SAMPLES: list[tuple[Any, ...]] = [
    (0, "", uuid.UUID(int=0)),
    (-5, "plain", uuid.UUID("5f0c1a5e-4b1d-4c51-9a57-0a1b2c3d4e5f")),
    (2**62, "a|b", uuid.uuid4()),
    (17, "back\\slash|\\|", uuid.uuid4()),
    (3, "ünïcødé ✓ 東京 \U0001f4da", uuid.uuid4()),
    (4, "|", uuid.uuid4()),
    (5, "\\", uuid.uuid4()),
    (6, "trailing\\", uuid.uuid4()),
    (7, "'quote\"", uuid.uuid4()),
]


@pytest.fixture(params=["sqlite", "pg"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/keys.db"
    else:
        make: Callable[[str], str] = request.getfixturevalue("pg_database")
        url = make("keys")
    created = sa.create_engine(sqlalchemy_url(url))
    yield created
    created.dispose()


def test_sql_key_text_equals_the_python_key_text(engine: sa.Engine) -> None:
    metadata = sa.MetaData()
    table = sa.Table(
        "copies",
        metadata,
        sa.Column("n", sa.BigInteger),
        sa.Column("code", sa.Text),
        sa.Column("u", sa.Uuid),
    )
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            table.insert(), [{"n": n, "code": code, "u": u} for n, code, u in SAMPLES]
        )
    keys = [
        KeyMapping(
            monolith=["n", "code", "u"],
            service=["n", "code", "u"],
            type=["integer", "text", "uuid"],
        ),
        KeyMapping(monolith=["code", "n"], service=["code", "n"], type=["text", "integer"]),
        KeyMapping(monolith="code", service="code", type="text"),
        KeyMapping(monolith="n", service="n"),
        KeyMapping(monolith="u", service="u", type="uuid"),
    ]
    dialect = engine.dialect.name
    with engine.connect() as connection:
        for key in keys:
            columns = ", ".join(f'"{column}"' for column in key.monolith_columns)
            statement = f'SELECT {key.text_sql("c", dialect)}, {columns} FROM "copies" AS "c"'
            rows = connection.execute(sa.text(statement)).all()
            assert len(rows) == len(SAMPLES)
            for sql_text, *values in rows:
                assert sql_text == key.text_of(values), (key.monolith_columns, values)
                typed = key.values_of(sql_text)
                assert key.text_of(typed) == sql_text


def test_a_uuid_stored_as_32_hex_digits_on_sqlite_gives_the_hyphenated_text(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/hex.db")
    value = uuid.UUID("5F0C1A5E-4B1D-4C51-9A57-0A1B2C3D4E5F")
    key = KeyMapping(monolith="u", service="u", type="uuid")
    with engine.begin() as connection:
        connection.execute(sa.text('CREATE TABLE t ("u" TEXT)'))
        connection.execute(
            sa.text("INSERT INTO t VALUES (:a), (:b)"), {"a": value.hex.upper(), "b": str(value)}
        )
        texts = (
            connection.execute(sa.text(f"SELECT {key.text_sql(None, 'sqlite')} FROM t"))
            .scalars()
            .all()
        )
    engine.dispose()
    assert texts == [str(value), str(value)]
    assert key.text_of((value.hex,)) == str(value)


def test_table_mapping_model_keeps_the_old_column_pair_name() -> None:
    from migration_plans.core.mapping import ColumnPair

    table = TableMapping(
        name="t",
        monolith_table="t",
        service_table="t",
        key=ColumnPair(monolith="id", service="id"),
        fields=(),
    )
    assert table.key.monolith == "id"
