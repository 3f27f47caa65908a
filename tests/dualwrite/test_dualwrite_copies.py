"""Copied columns (``copy_of``), enum maps, JSON and the empty-string policy through the relay
and the backfill, on PostgreSQL and SQLite.

``loans.book_title`` (service only) copies ``books.title`` through ``loans.isbn``: a
title changed in the monolith reaches every loan's copy in the relay's service
transaction, a loan written into the service gets its copy from the service's book, and
nothing of it goes back to the monolith. ``loans`` also has service-made uuid keys (the
id map), a four-valued enum, a JSON document with a float in it and a note whose empty
string is the service's NULL.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from dualwrite.backfill import Backfill
from dualwrite.capture import set_capture
from dualwrite.schema import SERVICE_TABLES
from migration_plans.core.mapping import ContextMapping
from tests.dualwrite.test_dualwrite_shapes import CONTEXT, Library

MAPPING = ContextMapping.model_validate(
    {
        "context": CONTEXT,
        "tables": [
            {
                "name": "books",
                "monolith_table": "lib_book",
                "service_table": "books",
                "key": {"monolith": "isbn", "service": "isbn", "type": "text"},
                "fields": [{"monolith": "title", "service": "title"}],
            },
            {
                "name": "loans",
                "monolith_table": "lib_loan",
                "service_table": "loans",
                "key": {"monolith": "id", "service": "id", "id_map": True, "service_type": "uuid"},
                "fields": [
                    {"monolith": "isbn", "service": "isbn"},
                    {
                        "monolith": "status",
                        "service": "status",
                        "transform": "enum_map",
                        "values": {"o": "open", "r": "returned", "d": "overdue", "l": "lost"},
                    },
                    {"monolith": "meta", "service": "meta", "transform": "json"},
                    {"monolith": "note", "service": "note", "empty_string": "null"},
                    {
                        "service": "book_title",
                        "copy_of": {"table": "books", "column": "title", "via": "isbn"},
                    },
                ],
            },
        ],
    }
)

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

monolith_metadata = sa.MetaData()
sa.Table(
    "lib_book",
    monolith_metadata,
    sa.Column("isbn", sa.String(40), primary_key=True),
    sa.Column("title", sa.String(200), nullable=False),
)
sa.Table(
    "lib_loan",
    monolith_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("isbn", sa.String(40), nullable=False),
    sa.Column("status", sa.String(1), nullable=False),
    sa.Column("meta", JSON, nullable=True),
    sa.Column("note", sa.String(200), nullable=False),
)
service_metadata = sa.MetaData()
sa.Table(
    "books",
    service_metadata,
    sa.Column("isbn", sa.String(40), primary_key=True),
    sa.Column("title", sa.String(200), nullable=False),
)
sa.Table(
    "loans",
    service_metadata,
    sa.Column("id", sa.Uuid().with_variant(sa.String(36), "sqlite"), primary_key=True),
    sa.Column("isbn", sa.String(40), nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("meta", JSON, nullable=True),
    sa.Column("note", sa.String(200), nullable=True),
    sa.Column("book_title", sa.String(200), nullable=True),
)
for _table in SERVICE_TABLES:
    _table.to_metadata(service_metadata)

META = {"renewals": 1.5, "tags": ["x", "y"], "nested": {"n": 2}}


@pytest.fixture(params=["sqlite", "pg"])
def library(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Library]:
    if request.param == "sqlite":
        urls = (f"sqlite:///{tmp_path}/monolith.db", f"sqlite:///{tmp_path}/service.db")
    else:
        make: Callable[[str], str] = request.getfixturevalue("pg_database")
        urls = (make("copies_m"), make("copies_s"))
    made = Library(*urls, mapping=MAPPING, metadata=(monolith_metadata, service_metadata))
    yield made
    made.close()


def decoded(value: Any) -> Any:
    """A JSON column's value as read back (PostgreSQL: decoded; SQLite: text)."""
    return json.loads(value) if isinstance(value, str) else value


def copies(library: Library) -> dict[str, tuple[Any, Any]]:
    """Each service loan's (book_title, the service book's title), by isbn + note."""
    rows = library.sql(
        "service",
        "SELECT l.isbn, l.note, l.book_title, b.title FROM loans l "
        "LEFT JOIN books b ON b.isbn = l.isbn",
    )
    return {f"{row[0]}/{row[1]}": (row[2], row[3]) for row in rows}


def test_copies_follow_their_source_and_never_reach_the_monolith(library: Library) -> None:
    loans = sa.Table("lib_loan", monolith_metadata)
    library.sql("monolith", "INSERT INTO lib_book VALUES ('111', 'First title')")
    with library.monolith.begin() as conn:
        conn.execute(
            loans.insert(),
            [
                {"isbn": "111", "status": "o", "meta": META, "note": ""},
                {"isbn": "111", "status": "l", "meta": None, "note": "two"},
                {"isbn": "222", "status": "d", "meta": [1, 2.25], "note": "no book"},
            ],
        )
    library.drain()
    library.assert_same()
    assert copies(library) == {
        "111/None": ("First title", "First title"),
        "111/two": ("First title", "First title"),
        "222/no book": (None, None),
    }
    service = library.sql("service", "SELECT status, meta FROM loans WHERE note IS NULL")
    assert [(row[0], decoded(row[1])) for row in service] == [("open", META)]

    # The referenced row changes: every copy follows, in the relay's transaction.
    library.sql("monolith", "UPDATE lib_book SET title = 'Second title' WHERE isbn = '111'")
    library.sql("monolith", "INSERT INTO lib_book VALUES ('222', 'Late book')")
    library.drain()
    library.assert_same()
    assert copies(library) == {
        "111/None": ("Second title", "Second title"),
        "111/two": ("Second title", "Second title"),
        "222/no book": ("Late book", "Late book"),
    }

    # A loan moved to another book gets that book's title.
    library.sql("monolith", "UPDATE lib_loan SET isbn = '222' WHERE note = 'two'")
    library.drain()
    assert copies(library)["222/two"] == ("Late book", "Late book")

    # The service's own loan: status and JSON reach the monolith, NULL note as '', no copy.
    service_key = str(uuid.uuid4())
    library.service_write(
        "loans",
        "insert",
        "INSERT INTO loans (id, isbn, status, meta, note, book_title) "
        f"VALUES (:id, '111', 'returned', {'CAST(:meta AS jsonb)' if library.pg else ':meta'}, "
        "NULL, 'Second title')",
        {
            "id": uuid.UUID(service_key) if library.pg else service_key,
            "meta": json.dumps({"k": [True, None, 0.5]}),
        },
        (service_key,),
        {
            "id": service_key,
            "isbn": "111",
            "status": "returned",
            "meta": {"k": [True, None, 0.5]},
            "note": None,
            "book_title": "Second title",
        },
    )
    library.drain()
    library.assert_same()
    monolith = library.sql("monolith", "SELECT status, meta, note FROM lib_loan WHERE status = 'r'")
    assert len(monolith) == 1
    status, meta, note = monolith[0]
    assert status == "r" and note == ""
    assert decoded(meta) == {"k": [True, None, 0.5]}

    # Deleting the book empties its copies (as the monolith's join would).
    library.sql("monolith", "DELETE FROM lib_book WHERE isbn = '222'")
    library.drain()
    assert copies(library)["222/two"] == (None, None)


def test_a_bulk_title_change_updates_every_copy_set_based(library: Library) -> None:
    loans = sa.Table("lib_loan", monolith_metadata)
    with library.monolith.begin() as conn:
        conn.execute(
            sa.Table("lib_book", monolith_metadata).insert(),
            [{"isbn": str(n), "title": f"t{n}"} for n in range(20)],
        )
        conn.execute(
            loans.insert(),
            [
                {"isbn": str(n % 20), "status": "o", "meta": {"n": n}, "note": f"n{n}"}
                for n in range(400)
            ],
        )
    library.drain()
    library.sql("monolith", "UPDATE lib_book SET title = title || ' (2nd ed.)'")
    library.drain()
    library.assert_same()
    found = copies(library)
    assert len(found) == 400
    assert all(copy == source and copy.endswith("(2nd ed.)") for copy, source in found.values())


def test_backfill_fills_copies_and_the_id_map(library: Library) -> None:
    set_capture(library.monolith, CONTEXT, enabled=False)
    library.sql("monolith", "INSERT INTO lib_book VALUES ('9', 'Nine')")
    with library.monolith.begin() as conn:
        conn.execute(
            sa.Table("lib_loan", monolith_metadata).insert(),
            [
                {"isbn": "9", "status": "r", "meta": {"i": n / 4}, "note": "" if n % 2 else "x"}
                for n in range(25)
            ],
        )
    backfill = Backfill(
        library.settings(),
        chunk_size=10,
        monolith=library.monolith,
        service=library.service,
        mapping=MAPPING,
    )
    try:
        assert backfill.run(progress=False).finished
    finally:
        backfill.close()
    library.assert_same()
    assert len(library.id_map()) == 25
    assert set(copies(library).values()) == {("Nine", "Nine")}
