"""The Python rendering of JSON and enum maps (SQLite's row hash) equals PostgreSQL's SQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from reconciler.canonical import Category, Op, OpKind, jsonb_text, parse_json, render
from reconciler.sql import pg_value
from tests.reconciler.reconcile_tables import engine

DOCUMENTS = [
    '{"b": 1, "a": 2, "aa": 3, "ä": 4, "B": 5}',
    '{"x": {"z": [1, 2.50, -0, -0.0, 1e2, 1.5E+3, 1e-7, 12345678901234567890]}}',
    '{"s": "quote \\" backslash \\\\ tab \\t nl \\n ctl \\u0001 uni \\u00e9 ☃ \\ud83d\\udcda"}',
    '{"dup": 1, "dup": 2}',
    '[true, false, null, "", {}, []]',
    '"just text"',
    "3.14159",
    "{}",
]


@pytest.fixture
def pg(pg_database: Callable[[str], str]) -> sa.Engine:
    return engine(pg_database("jsontext"))


@pytest.mark.parametrize("document", DOCUMENTS)
def test_jsonb_text_in_python_equals_postgresql(pg: sa.Engine, document: str) -> None:
    with pg.connect() as conn:
        expected = conn.execute(sa.text("SELECT CAST(CAST(:d AS jsonb) AS TEXT)"), {"d": document})
        text = expected.scalar_one()
    op = Op(kind=OpKind.JSON, category=Category.TEXT)
    assert jsonb_text(parse_json(document)) == text
    assert render(op, document) == text
    with pg.connect() as conn:
        sql = pg_value(op, "CAST(:d AS TEXT)")
        assert conn.execute(sa.text(f"SELECT {sql}"), {"d": document}).scalar_one() == text


@pytest.mark.parametrize("value", ["o", "c", "q", "it's", "", None])
def test_enum_map_rendering_in_python_equals_postgresql(pg: sa.Engine, value: str | None) -> None:
    op = Op(
        kind=OpKind.ENUM_MAP,
        category=Category.TEXT,
        values=(("o", "open"), ("c", "closed"), ("it's", "it is")),
        unknown="?m:",
    )
    with pg.connect() as conn:
        sql = pg_value(op, "CAST(:v AS TEXT)")
        assert conn.execute(sa.text(f"SELECT {sql}"), {"v": value}).scalar_one() == render(
            op, value
        )
