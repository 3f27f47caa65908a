"""The richer mapping through capture, relay and backfill, on PostgreSQL and SQLite.

One small library context of its own tables (not the shop's) with every key shape:

- ``books``: a text key (values holding ``|`` and ``\\``);
- ``copies``: a composite key (text, text, integer) renamed on the service side;
- ``members`` + ``member_contacts``: one monolith table split between two pairs
  (``member_contacts`` cannot fill the NOT NULL ``name``, so it only updates rows);
- ``loans``: the service makes its own uuid keys, the id map pairs them up.

Each test writes on the monolith (SQL: the capture triggers make the events) and on the
service (rows and outbox events in one transaction, as services do), drains the relay
both ways and compares both databases through the mapping.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from dualwrite.backfill import Backfill, copy_text_field
from dualwrite.capture import install_capture, set_capture
from dualwrite.config import Direction, RelaySettings
from dualwrite.exceptions import ApplyFailed
from dualwrite.outbox import OutboxSink
from dualwrite.partitions import Partition, PartitionError
from dualwrite.relay import Relay
from dualwrite.schema import SERVICE_TABLES
from dualwrite.shapes import IdMapError, KeyTranslator
from dualwrite.status import collect_status
from migration_plans.core import idmap
from migration_plans.core.database import sqlalchemy_url
from migration_plans.core.mapping import ContextMapping, TableMapping
from migration_plans.core.outbox import outbox_table

CONTEXT = "lending"

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
                "name": "copies",
                "monolith_table": "lib_copy",
                "service_table": "copies",
                "key": {
                    "monolith": ["branch_id", "book_id", "copy_no"],
                    "service": ["branch_code", "isbn", "copy_no"],
                    "type": ["text", "text", "integer"],
                },
                "fields": [
                    {"monolith": "shelf", "service": "shelf"},
                    {
                        "monolith": "is_out",
                        "service": "state",
                        "transform": "bool_enum",
                        "true_value": "out",
                        "false_value": "in",
                    },
                ],
            },
            {
                "name": "members",
                "monolith_table": "lib_member",
                "service_table": "members",
                "key": {"monolith": "id", "service": "id"},
                "fields": [{"monolith": "name", "service": "name"}],
            },
            {
                "name": "member_contacts",
                "monolith_table": "lib_member",
                "service_table": "member_contacts",
                "key": {"monolith": "id", "service": "member_id"},
                "fields": [{"monolith": "email", "service": "email"}],
            },
            {
                "name": "loans",
                "monolith_table": "lib_loan",
                "service_table": "loans",
                "key": {"monolith": "id", "service": "id", "id_map": True, "service_type": "uuid"},
                "fields": [
                    {"monolith": "isbn", "service": "isbn"},
                    {"monolith": "note", "service": "note"},
                ],
            },
        ],
    }
)

monolith_metadata = sa.MetaData()
sa.Table(
    "lib_book",
    monolith_metadata,
    sa.Column("isbn", sa.String(40), primary_key=True),
    sa.Column("title", sa.String(200), nullable=False),
)
sa.Table(
    "lib_copy",
    monolith_metadata,
    sa.Column("branch_id", sa.String(40), primary_key=True),
    sa.Column("book_id", sa.String(40), primary_key=True),
    sa.Column("copy_no", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("shelf", sa.String(40), nullable=True),
    sa.Column("is_out", sa.Boolean, nullable=False),
)
sa.Table(
    "lib_member",
    monolith_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("email", sa.String(80), nullable=True),
)
sa.Table(
    "lib_loan",
    monolith_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("isbn", sa.String(40), nullable=False),
    sa.Column("note", sa.String(200), nullable=True),
)

service_metadata = sa.MetaData()
sa.Table(
    "books",
    service_metadata,
    sa.Column("isbn", sa.String(40), primary_key=True),
    sa.Column("title", sa.String(200), nullable=False),
)
sa.Table(
    "copies",
    service_metadata,
    sa.Column("branch_code", sa.String(40), primary_key=True),
    sa.Column("isbn", sa.String(40), primary_key=True),
    sa.Column("copy_no", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("shelf", sa.String(40), nullable=True),
    sa.Column("state", sa.String(8), nullable=False),
)
sa.Table(
    "members",
    service_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(80), nullable=False),
)
sa.Table(
    "member_contacts",
    service_metadata,
    sa.Column("member_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("email", sa.String(80), nullable=True),
)
sa.Table(
    "loans",
    service_metadata,
    sa.Column("id", sa.Uuid().with_variant(sa.String(36), "sqlite"), primary_key=True),
    sa.Column("isbn", sa.String(40), nullable=False),
    sa.Column("note", sa.String(200), nullable=True),
)
for _table in SERVICE_TABLES:
    _table.to_metadata(service_metadata)

M2S, S2M = Direction.MONOLITH_TO_SERVICE, Direction.SERVICE_TO_MONOLITH


class Library:
    """A monolith and a service database with the library's tables, capture on, a relay."""

    def __init__(
        self,
        monolith_url: str,
        service_url: str,
        mapping: ContextMapping = MAPPING,
        metadata: tuple[sa.MetaData, sa.MetaData] = (monolith_metadata, service_metadata),
    ) -> None:
        self.urls = (monolith_url, service_url)
        self.mapping = mapping
        self.monolith = sa.create_engine(sqlalchemy_url(monolith_url))
        self.service = sa.create_engine(sqlalchemy_url(service_url))
        metadata[0].create_all(self.monolith)
        metadata[1].create_all(self.service)
        install_capture(self.monolith, [mapping])
        set_capture(self.monolith, CONTEXT, enabled=True)
        self.relay = Relay(
            self.settings(), monolith=self.monolith, service=self.service, mapping=mapping
        )

    @property
    def pg(self) -> bool:
        return self.monolith.dialect.name == "postgresql"

    def settings(self, **overrides: Any) -> RelaySettings:
        return RelaySettings(
            context=CONTEXT,
            monolith_url=self.urls[0],
            service_url=self.urls[1],
            max_attempts=3,
            **overrides,
        )

    def sql(self, side: str, statement: str, params: dict[str, Any] | None = None) -> Any:
        engine = self.monolith if side == "monolith" else self.service
        with engine.begin() as conn:
            result = conn.execute(sa.text(statement), params or {})
            return result.all() if result.returns_rows else result.rowcount

    def service_write(
        self,
        pair_name: str,
        operation: str,
        statement: str,
        params: dict[str, Any],
        key: tuple[Any, ...],
        image: dict[str, Any] | None,
    ) -> None:
        """A service write: the row and its outbox event in one transaction."""
        pair = self.mapping.table(pair_name)
        with Session(self.service) as session, session.begin():
            session.execute(sa.text(statement), params)
            OutboxSink(context=CONTEXT).record(
                session,
                table=pair_name,
                operation=operation,
                key=pair.key.text_of(key, "service"),
                row=image,
            )

    def drain(self, rounds: int = 60) -> None:
        """Apply both directions until neither has a pending event (bounded passes)."""
        for _ in range(rounds):
            if not any(self.relay.apply_pending(direction) for direction in (M2S, S2M)):
                return
        raise AssertionError(f"outboxes still busy after {rounds} passes: {self.pending()}")

    def pending(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for side, engine in (("monolith", self.monolith), ("service", self.service)):
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.select(outbox_table.c.aggregate_type, sa.func.count())
                    .where(outbox_table.c.status == "pending")
                    .group_by(outbox_table.c.aggregate_type)
                ).all()
            counts[side] = {row[0]: int(row[1]) for row in rows}
        return counts

    def monolith_rows(self, pair: TableMapping) -> dict[str, dict[str, Any]]:
        """Monolith rows of ``pair`` by key text, fields in service form."""
        table = sa.Table(pair.monolith_table, sa.MetaData(), autoload_with=self.monolith)
        with self.monolith.connect() as conn:
            rows = conn.execute(sa.select(*(table.c[c] for c in pair.monolith_columns)))
            return {
                pair.key.text_of(pair.monolith_key(row._mapping)): pair.convert_fields_only(
                    row._mapping, to="service"
                )
                for row in rows
            }

    def service_rows(self, pair: TableMapping) -> dict[str, dict[str, Any]]:
        """Service rows of ``pair`` by MONOLITH key text (id-map keys translated)."""
        table = sa.Table(pair.service_table, sa.MetaData(), autoload_with=self.service)
        with self.service.connect() as conn:
            rows = [
                row._mapping
                for row in conn.execute(sa.select(*(table.c[c] for c in pair.service_columns)))
            ]
            found = {
                pair.key.text_of(pair.service_key(row), "service"): pair.convert_fields_only(
                    pair.convert_fields_only(row, to="monolith"), to="service"
                )
                for row in rows
            }
            if not pair.key.id_map:
                return found
            back = idmap.monolith_keys(conn, pair.name, found)
        assert set(back) == set(found), f"service rows without a map row: {set(found) - set(back)}"
        return {back[key]: value for key, value in found.items()}

    def assert_same(self) -> None:
        assert self.pending() == {"monolith": {}, "service": {}}
        for pair in self.mapping.tables:
            assert self.monolith_rows(pair) == self.service_rows(pair), pair.name

    def id_map(self) -> dict[str, str]:
        with self.service.connect() as conn:
            rows = conn.execute(
                sa.select(idmap.id_map_table.c.monolith_key, idmap.id_map_table.c.service_key)
            ).all()
        return {row[0]: row[1] for row in rows}

    def close(self) -> None:
        self.relay.close()


@pytest.fixture(params=["sqlite", "pg"])
def library(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Library]:
    if request.param == "sqlite":
        urls = (f"sqlite:///{tmp_path}/monolith.db", f"sqlite:///{tmp_path}/service.db")
    else:
        make: Callable[[str], str] = request.getfixturevalue("pg_database")
        urls = (make("shapes_m"), make("shapes_s"))
    made = Library(*urls)
    yield made
    made.close()


@pytest.fixture
def pg_library(pg_database: Callable[[str], str]) -> Iterator[Library]:
    made = Library(pg_database("shapes_m"), pg_database("shapes_s"))
    yield made
    made.close()


ODD_ISBNS = ["978|1", "a\\b", "x\\|y|", "plain"]


def test_text_and_composite_keys_round_trip_with_a_key_change(library: Library) -> None:
    for number, isbn in enumerate(ODD_ISBNS):
        library.sql(
            "monolith",
            "INSERT INTO lib_book (isbn, title) VALUES (:isbn, :title)",
            {"isbn": isbn, "title": f"title {number}"},
        )
    for copy_no in (1, 2):
        library.sql(
            "monolith",
            "INSERT INTO lib_copy (branch_id, book_id, copy_no, shelf, is_out) "
            "VALUES ('main|x', 'a\\b|', :n, 'A', :out)",
            {"n": copy_no, "out": copy_no == 2},
        )
    library.drain()
    library.assert_same()
    assert sorted(library.service_rows(MAPPING.table("books"))) == sorted(ODD_ISBNS)

    # A statement that moves composite keys: a delete of each old key, an upsert of each new.
    library.sql("monolith", "UPDATE lib_copy SET copy_no = copy_no + 10")
    assert library.pending()["monolith"] == {"copies": 4}
    library.drain()
    library.assert_same()
    assert sorted(r[0] for r in library.sql("service", "SELECT copy_no FROM copies")) == [11, 12]

    # The service writes: a new copy with a separator in its key, a title, a deleted copy.
    library.service_write(
        "copies",
        "insert",
        "INSERT INTO copies VALUES ('svc\\|', 'a\\b', 7, NULL, 'out')",
        {},
        ("svc\\|", "a\\b", 7),
        {"branch_code": "svc\\|", "isbn": "a\\b", "copy_no": 7, "shelf": None, "state": "out"},
    )
    library.service_write(
        "books",
        "update",
        "UPDATE books SET title = 'renamed' WHERE isbn = :isbn",
        {"isbn": "978|1"},
        ("978|1",),
        {"isbn": "978|1", "title": "renamed"},
    )
    library.service_write(
        "copies",
        "delete",
        "DELETE FROM copies WHERE copy_no = 11",
        {},
        ("main|x", "a\\b|", 11),
        None,
    )
    library.drain()
    library.assert_same()
    copies = library.sql("monolith", "SELECT branch_id, book_id, copy_no, is_out FROM lib_copy")
    assert sorted(copies) == [("main|x", "a\\b|", 12, True), ("svc\\|", "a\\b", 7, True)]
    assert library.sql("monolith", "SELECT title FROM lib_book WHERE isbn = '978|1'") == [
        ("renamed",)
    ]

    library.sql("monolith", "DELETE FROM lib_copy WHERE branch_id = 'svc\\|'")
    library.drain()
    library.assert_same()


def test_a_key_text_longer_than_64_characters_is_captured_and_applied(
    library: Library,
) -> None:
    """Composite keys of long text parts: 40 + 40 characters, escaped, joined (was varchar(64))."""
    branch, book = "b|" * 20, "i\\" * 20
    library.sql(
        "monolith",
        "INSERT INTO lib_copy (branch_id, book_id, copy_no, shelf, is_out) "
        "VALUES (:branch, :book, 1, 'A', false)",
        {"branch": branch, "book": book},
    )
    key_text = MAPPING.table("copies").key.text_of((branch, book, 1))
    assert len(key_text) > 100
    library.drain()
    library.assert_same()
    library.service_write(
        "copies",
        "update",
        "UPDATE copies SET shelf = 'B' WHERE branch_code = :branch",
        {"branch": branch},
        (branch, book, 1),
        {"branch_code": branch, "isbn": book, "copy_no": 1, "shelf": "B", "state": "in"},
    )
    library.drain()
    library.assert_same()
    assert library.sql("monolith", "SELECT shelf FROM lib_copy") == [("B",)]


def test_bulk_update_of_5000_composite_rows_is_set_based(
    pg_library: Library, caplog: pytest.LogCaptureFixture
) -> None:
    library = pg_library
    library.sql(
        "monolith",
        "INSERT INTO lib_copy (branch_id, book_id, copy_no, shelf, is_out) "
        "SELECT 'b|' || (n % 7), 'isbn\\' || (n % 13), n, 'S', n % 2 = 0 "
        "FROM generate_series(1, 5000) AS n",
    )
    library.drain()
    library.assert_same()
    caplog.set_level(logging.INFO, logger="dualwrite.relay")
    library.sql("monolith", "UPDATE lib_copy SET shelf = 'moved ' || copy_no, is_out = NOT is_out")
    assert library.pending()["monolith"] == {"copies": 5000}
    library.drain()
    library.assert_same()
    # Every key's key moves too: 5,000 deletes and 5,000 upserts, set-based as well.
    library.sql("monolith", "UPDATE lib_copy SET copy_no = copy_no + 100000")
    assert library.pending()["monolith"] == {"copies": 10000}
    library.drain()
    library.assert_same()
    assert not [r for r in caplog.records if "writing them in commit order" in r.getMessage()]
    low = library.sql("service", "SELECT min(copy_no), count(*) FROM copies")
    assert low == [(100001, 5000)]


def test_id_map_pairs_keys_both_ways_and_forgets_deleted_rows(library: Library) -> None:
    library.sql("monolith", "INSERT INTO lib_loan (isbn, note) VALUES ('a', 'first')")
    library.drain()
    library.assert_same()
    (monolith_id,) = library.sql("monolith", "SELECT id FROM lib_loan")[0]
    mapped = library.id_map()
    assert list(mapped) == [str(monolith_id)]
    uuid.UUID(mapped[str(monolith_id)])  # the service's key is a uuid the relay made

    service_key = str(uuid.uuid4())
    library.service_write(
        "loans",
        "insert",
        "INSERT INTO loans (id, isbn, note) VALUES (:id, 'b', 'from the service')",
        {"id": service_key if not library.pg else uuid.UUID(service_key)},
        (service_key,),
        {"id": service_key, "isbn": "b", "note": "from the service"},
    )
    library.drain()
    library.assert_same()
    reverse = {value: key for key, value in library.id_map().items()}
    new_id = int(reverse[service_key])
    assert new_id > monolith_id  # reserved from the monolith's own ids
    assert library.sql("monolith", "SELECT note FROM lib_loan WHERE id = :id", {"id": new_id}) == [
        ("from the service",)
    ]

    library.sql("monolith", "UPDATE lib_loan SET note = 'changed' WHERE id = :id", {"id": new_id})
    library.drain()
    library.assert_same()

    library.service_write(
        "loans",
        "delete",
        "DELETE FROM loans WHERE isbn = 'b'",
        {},
        (service_key,),
        None,
    )
    library.drain()
    library.assert_same()
    assert list(library.id_map()) == [str(monolith_id)]
    library.sql("monolith", "DELETE FROM lib_loan")
    library.drain()
    library.assert_same()
    assert library.id_map() == {}


def test_id_map_crash_between_the_map_and_the_monolith_insert_inserts_once(
    pg_library: Library,
) -> None:
    library = pg_library
    # The monolith refuses the first two inserts (the set-based write and its in-order
    # retry: one failed apply), as a crash after the map's commit would leave it.
    library.sql("monolith", "CREATE SEQUENCE fail_once")
    library.sql(
        "monolith",
        "CREATE FUNCTION refuse_twice() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN "
        "IF nextval('fail_once') <= 2 THEN RAISE EXCEPTION 'injected failure'; END IF; "
        "RETURN NEW; END $f$",
    )
    library.sql(
        "monolith",
        "CREATE TRIGGER refuse BEFORE INSERT ON lib_loan FOR EACH ROW EXECUTE FUNCTION refuse_twice()",
    )
    service_key = uuid.uuid4()
    library.service_write(
        "loans",
        "insert",
        "INSERT INTO loans (id, isbn, note) VALUES (:id, 'c', 'once')",
        {"id": service_key},
        (str(service_key),),
        {"id": str(service_key), "isbn": "c", "note": "once"},
    )
    with pytest.raises(ApplyFailed, match="injected failure"):
        library.relay.apply_pending(S2M)
    mapped = library.id_map()  # recorded before the insert, and kept
    assert list(mapped.values()) == [str(service_key)]
    assert library.sql("monolith", "SELECT count(*) FROM lib_loan") == [(0,)]

    library.drain()
    library.assert_same()
    assert library.id_map() == mapped
    assert library.sql("monolith", "SELECT id, note FROM lib_loan") == [
        (int(next(iter(mapped))), "once")
    ]
    # One id reserved in all: the retry reused the map's.
    sequence = library.sql("monolith", "SELECT last_value FROM lib_loan_id_seq")
    assert sequence == [(int(next(iter(mapped))),)]


def test_id_map_contexts_refuse_relay_partitions(pg_library: Library) -> None:
    settings = pg_library.settings(partition=Partition(index=0, count=2))
    with pytest.raises(PartitionError, match="id-map pairs \\(loans\\)"):
        Relay(settings, monolith=pg_library.monolith, service=pg_library.service, mapping=MAPPING)


def test_split_table_feeds_two_service_tables_and_updates_only_a_pairs_columns(
    library: Library,
) -> None:
    library.sql("monolith", "INSERT INTO lib_member (id, name, email) VALUES (1, 'Ann', 'a@x')")
    assert library.pending()["monolith"] == {"members": 1, "member_contacts": 1}
    library.drain()
    library.assert_same()

    library.sql("monolith", "UPDATE lib_member SET email = 'ann@x' WHERE id = 1")
    assert library.pending()["monolith"] == {"member_contacts": 1}  # name did not change
    library.drain()
    library.assert_same()

    library.service_write(
        "member_contacts",
        "update",
        "UPDATE member_contacts SET email = 'new@x' WHERE member_id = 1",
        {},
        (1,),
        {"member_id": 1, "email": "new@x"},
    )
    library.drain()
    library.assert_same()
    assert library.sql("monolith", "SELECT name, email FROM lib_member") == [("Ann", "new@x")]

    # A contact for a member the monolith does not have yet: it cannot invent a name.
    library.service_write(
        "member_contacts",
        "insert",
        "INSERT INTO member_contacts VALUES (2, 'bo@x')",
        {},
        (2,),
        {"member_id": 2, "email": "bo@x"},
    )
    with pytest.raises(ApplyFailed, match="NOT NULL column\\(s\\) name belong to 'members'"):
        library.relay.retry_key(S2M, "member_contacts", "2")
    assert library.sql("monolith", "SELECT count(*) FROM lib_member WHERE id = 2") == [(0,)]
    library.service_write(
        "members",
        "insert",
        "INSERT INTO members VALUES (2, 'Bo')",
        {},
        (2,),
        {"id": 2, "name": "Bo"},
    )
    assert library.relay.retry_key(S2M, "members", "2") == 1
    assert library.relay.retry_key(S2M, "member_contacts", "2") == 1
    library.drain()
    library.assert_same()
    assert library.sql("monolith", "SELECT name, email FROM lib_member WHERE id = 2") == [
        ("Bo", "bo@x")
    ]

    library.sql("monolith", "DELETE FROM lib_member WHERE id = 1")
    library.drain()
    library.assert_same()


def test_split_table_events_of_both_pairs_in_one_batch_create_then_update(
    pg_library: Library,
) -> None:
    """Set-based: the creating pair's upserts go before the other pair's updates."""
    library = pg_library
    library.service_write(
        "member_contacts",
        "insert",
        "INSERT INTO member_contacts VALUES (5, 'cy@x')",
        {},
        (5,),
        {"member_id": 5, "email": "cy@x"},
    )
    library.service_write(
        "members",
        "insert",
        "INSERT INTO members VALUES (5, 'Cy')",
        {},
        (5,),
        {"id": 5, "name": "Cy"},
    )
    library.drain()
    library.assert_same()
    assert library.sql("monolith", "SELECT name, email FROM lib_member") == [("Cy", "cy@x")]


def test_backfill_copies_composite_text_and_id_map_keys_resumably(library: Library) -> None:
    set_capture(library.monolith, CONTEXT, enabled=False)
    for number in range(30):
        library.sql(
            "monolith",
            "INSERT INTO lib_copy VALUES (:branch, :book, :n, NULL, :out)",
            {"branch": f"b|{number % 3}", "book": f"k\\{number % 4}", "n": number, "out": False},
        )
        library.sql(
            "monolith", "INSERT INTO lib_loan (isbn, note) VALUES (:i, NULL)", {"i": str(number)}
        )
    for isbn in ODD_ISBNS:
        library.sql("monolith", "INSERT INTO lib_book VALUES (:isbn, 't')", {"isbn": isbn})
    settings = library.settings()
    first = Backfill(
        settings, chunk_size=7, monolith=library.monolith, service=library.service, mapping=MAPPING
    )
    assert not first.run(progress=False, max_chunks=3).finished
    first.close()
    positions = first.checkpoints()  # books done (2 chunks), copies' first chunk: key text
    assert positions["books"]["finished_at"] is not None
    assert positions["copies"]["rows_copied"] == 7
    # Row 7 in key order: branch b|0 holds books k\0 (0, 12, 24), k\1 (9, 21), k\2 (6, 18).
    copies_key = MAPPING.table("copies").key
    assert positions["copies"]["last_key"] == copies_key.text_of(("b|0", "k\\2", 18))
    shown = {row["table_name"]: row["last_key"] for row in collect_status(library.relay).backfill}
    assert shown["copies"] == positions["copies"]["last_key"]
    second = Backfill(
        settings, chunk_size=7, monolith=library.monolith, service=library.service, mapping=MAPPING
    )
    result = second.run(progress=False)
    second.close()
    assert result.finished
    assert sum(row["rows_copied"] for row in second.checkpoints().values()) == 64
    library.assert_same()
    assert len(library.id_map()) == 30

    library.sql("monolith", "UPDATE lib_loan SET note = 'after' WHERE id <= 3")
    library.sql("monolith", "UPDATE lib_copy SET is_out = true WHERE copy_no < 5")
    library.drain()
    library.assert_same()


def test_copy_text_fields_unescape() -> None:
    assert copy_text_field("\\N") is None
    assert copy_text_field("a\\\\b\\tc|d") == "a\\b\tc|d"


# -- a property: any interleaving of both sides' writes converges ---------------------------

PROPERTY_KEYS = [("a|b", "x\\", 1), ("a", "b|x\\", 1), ("a|b", "x\\", 2), ("\\", "|", 3)]
copy_writes = st.tuples(
    st.sampled_from(["monolith", "service"]),
    st.sampled_from(["upsert", "upsert", "delete", "move"]),
    st.integers(min_value=0, max_value=len(PROPERTY_KEYS) - 1),
    st.integers(min_value=0, max_value=99),
)
relay_passes = st.tuples(st.just("pass"), st.sampled_from([M2S, S2M]))


def _reset_copies(library: Library) -> None:
    for engine in (library.monolith, library.service):
        with engine.begin() as conn:
            if engine is library.monolith:
                conn.exec_driver_sql("SELECT set_config('strangler.origin', 'relay', true)")
            table = "lib_copy" if engine is library.monolith else "copies"
            for name in (table, "strangler_outbox", "strangler_applied_event"):
                conn.exec_driver_sql(f"DELETE FROM {name}")


def _write_copy(library: Library, side: str, operation: str, index: int, shelf: int) -> None:
    branch, book, number = PROPERTY_KEYS[index]
    key = {"b": branch, "k": book, "n": number, "s": f"s{shelf}"}
    if side == "monolith":
        where = "branch_id = :b AND book_id = :k AND copy_no = :n"
        if operation == "delete":
            library.sql("monolith", f"DELETE FROM lib_copy WHERE {where}", key)
        elif operation == "move":  # the key moves: a delete and an upsert
            library.sql(
                "monolith", f"UPDATE lib_copy SET copy_no = copy_no + 10 WHERE {where}", key
            )
        else:
            library.sql(
                "monolith",
                "INSERT INTO lib_copy VALUES (:b, :k, :n, :s, false) ON CONFLICT "
                "(branch_id, book_id, copy_no) DO UPDATE SET shelf = excluded.shelf",
                key,
            )
        return
    where = "branch_code = :b AND isbn = :k AND copy_no = :n"
    if operation == "delete":
        library.service_write(
            "copies",
            "delete",
            f"DELETE FROM copies WHERE {where}",
            key,
            (branch, book, number),
            None,
        )
        return
    library.service_write(
        "copies",
        "update",
        "INSERT INTO copies VALUES (:b, :k, :n, :s, 'in') ON CONFLICT "
        "(branch_code, isbn, copy_no) DO UPDATE SET shelf = excluded.shelf",
        key,
        (branch, book, number),
        {
            "branch_code": branch,
            "isbn": book,
            "copy_no": number,
            "shelf": f"s{shelf}",
            "state": "in",
        },
    )


@settings(
    max_examples=int(os.environ.get("STRANGLER_PROPERTY_EXAMPLES", "20")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(st.one_of(copy_writes, copy_writes, relay_passes), min_size=1, max_size=20))
def test_any_interleaving_on_composite_keys_converges(
    pg_library: Library, steps: list[Any]
) -> None:
    library = pg_library
    _reset_copies(library)
    small = Relay(
        library.settings(batch_size=2),
        monolith=library.monolith,
        service=library.service,
        mapping=MAPPING,
    )
    for step in steps:
        if step[0] == "pass":
            small.apply_next(step[1])
        else:
            _write_copy(library, *step)
    library.drain()
    library.assert_same()


def test_id_map_makes_only_uuid_or_text_service_keys(tmp_path: Path) -> None:
    loans = MAPPING.table("loans").model_dump(by_alias=True)
    loans["key"] = {"monolith": "id", "service": "id", "id_map": True, "service_type": "integer"}
    mapping = ContextMapping.model_validate({"context": CONTEXT, "tables": [loans]})
    engine = sa.create_engine(f"sqlite:///{tmp_path}/service.db")
    idmap.id_map_metadata.create_all(engine)
    with engine.begin() as conn, pytest.raises(IdMapError, match="only uuid or text"):
        KeyTranslator(mapping, engine).create_service_keys(conn, [("loans", "1")])
    engine.dispose()


def test_id_map_crash_before_the_sqlite_monolith_insert_inserts_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: the write after the map's commit dies once (as a killed relay would)."""
    library = Library(f"sqlite:///{tmp_path}/monolith.db", f"sqlite:///{tmp_path}/service.db")
    try:
        library.sql("monolith", "INSERT INTO lib_loan (id, isbn) VALUES (41, 'old')")
        library.drain()
        service_key = str(uuid.uuid4())
        library.service_write(
            "loans",
            "insert",
            "INSERT INTO loans (id, isbn, note) VALUES (:id, 'd', 'once')",
            {"id": service_key},
            (service_key,),
            {"id": service_key, "isbn": "d", "note": "once"},
        )
        original = Relay._write_in_order
        calls: list[int] = []

        def dies_once(self: Relay, *args: Any) -> None:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("relay killed after the id map's commit")
            original(self, *args)

        monkeypatch.setattr(Relay, "_write_in_order", dies_once)
        with pytest.raises(ApplyFailed, match="relay killed"):
            library.relay.apply_pending(S2M)
        assert library.id_map() == {"41": library.id_map()["41"], "42": service_key}
        assert library.sql("monolith", "SELECT count(*) FROM lib_loan") == [(1,)]
        library.drain()
        library.assert_same()
        assert library.sql("monolith", "SELECT id, note FROM lib_loan WHERE isbn = 'd'") == [
            (42, "once")
        ]
        assert len(library.id_map()) == 2
    finally:
        library.close()
