"""Every mapping shape in the reconciler, on PostgreSQL and SQLite: clean when the data
agrees, and each planted divergence found and reported under its key text.

Shapes: a composite (integer, text) key whose text parts hold ``|`` and ``\\``, enum_map,
JSON (json in the monolith, jsonb in the service), the empty-string policy, a user
transform (the shipped ``cents_string``, hashed through its SQL), a copied column,
a split monolith table, and an id-map pair whose service makes its own UUIDs.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from migration_plans.core.idmap import id_map_metadata, id_map_table
from migration_plans.core.mapping import ContextMapping
from migration_plans.core.outbox import outbox_table
from migration_plans.core.phase import Phase
from migration_plans.core.plan import Plan
from reconciler.exceptions import RepairRefused
from reconciler.incremental import Baseline
from reconciler.references import Located, check_references
from reconciler.repair import apply_repair, plan_repair
from reconciler.report import Report, Verdict
from reconciler.runner import ReconcileOptions, per_key_value, reconcile
from reconciler.schema import inspect_pair
from tests.reconciler.reconcile_tables import engine, insert

OPTIONS = ReconcileOptions(grace_seconds=0.05, max_rechecks=2, levels=(16, 8), segment_size=1024)

MAPPING = ContextMapping.model_validate(
    {
        "context": "library",
        "tables": [
            {
                "name": "copies",
                "monolith_table": "library_copy",
                "service_table": "copies",
                "key": {
                    "monolith": ["branch_id", "isbn"],
                    "service": ["branch", "isbn"],
                    "type": ["integer", "text"],
                },
                "fields": [{"monolith": "shelf", "service": "shelf"}],
            },
            {
                "name": "books",
                "monolith_table": "library_book",
                "service_table": "books",
                "key": {"monolith": "id", "service": "id"},
                "fields": [
                    {"monolith": "title", "service": "title"},
                    {
                        "monolith": "state",
                        "service": "state",
                        "transform": "enum_map",
                        "values": {"o": "open", "c": "closed", "x": "cancelled", "l": "lost"},
                    },
                    {"monolith": "meta", "service": "meta", "transform": "json"},
                    {"monolith": "notes", "service": "notes", "empty_string": "null"},
                    {
                        "monolith": "fee",
                        "service": "fee_cents",
                        "transform": "custom",
                        "name": "cents_string",
                    },
                ],
            },
            {
                "name": "loans",
                "monolith_table": "library_loan",
                "service_table": "loans",
                "key": {"monolith": "id", "service": "id"},
                "fields": [
                    {"monolith": "book_id", "service": "book_id"},
                    {
                        "service": "book_title",
                        "copy_of": {"table": "books", "column": "title", "via": "book_id"},
                    },
                ],
            },
            {
                "name": "members",
                "monolith_table": "library_member",
                "service_table": "members",
                "key": {"monolith": "id", "service": "id"},
                "fields": [{"monolith": "name", "service": "name"}],
            },
            {
                "name": "member_addresses",
                "monolith_table": "library_member",
                "service_table": "member_addresses",
                "key": {"monolith": "id", "service": "member_id"},
                "fields": [{"monolith": "street", "service": "street"}],
            },
            {
                "name": "patrons",
                "monolith_table": "library_patron",
                "service_table": "patrons",
                "key": {"monolith": "id", "service": "id", "service_type": "uuid", "id_map": True},
                "fields": [{"monolith": "name", "service": "name"}],
            },
        ],
    }
)

ROWS = 60
ISBNS = ["978|0", "back\\slash", "plain", "ü|\\|", "x\\|y"]
STATES = ["o", "c", "x", "l"]


def _json_type(dialect: str, binary: bool) -> Any:
    if dialect == "postgresql":
        return postgresql.JSONB() if binary else postgresql.JSON()
    return sa.JSON()


def _monolith_tables(dialect: str) -> tuple[sa.MetaData, dict[str, sa.Table]]:
    metadata = sa.MetaData()
    tables = {
        "copies": sa.Table(
            "library_copy",
            metadata,
            sa.Column("branch_id", sa.Integer, primary_key=True),
            sa.Column("isbn", sa.Text, primary_key=True),
            sa.Column("shelf", sa.Text),
        ),
        "books": sa.Table(
            "library_book",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("title", sa.Text),
            sa.Column("state", sa.String(1)),
            sa.Column("meta", _json_type(dialect, binary=False)),
            sa.Column("notes", sa.Text, nullable=False),
            sa.Column("fee", sa.String(20)),
        ),
        "loans": sa.Table(
            "library_loan",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("book_id", sa.Integer),
        ),
        "members": sa.Table(
            "library_member",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.Text),
            sa.Column("street", sa.Text),
        ),
        "patrons": sa.Table(
            "library_patron",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.Text),
        ),
    }
    return metadata, tables


def _service_tables(dialect: str) -> tuple[sa.MetaData, dict[str, sa.Table]]:
    metadata = sa.MetaData()
    tables = {
        "copies": sa.Table(
            "copies",
            metadata,
            sa.Column("branch", sa.Integer, primary_key=True),
            sa.Column("isbn", sa.Text, primary_key=True),
            sa.Column("shelf", sa.Text),
        ),
        "books": sa.Table(
            "books",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("title", sa.Text),
            sa.Column("state", sa.String(12)),
            sa.Column("meta", _json_type(dialect, binary=True)),
            sa.Column("notes", sa.Text, nullable=True),
            sa.Column("fee_cents", sa.BigInteger),
        ),
        "loans": sa.Table(
            "loans",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("book_id", sa.Integer),
            sa.Column("book_title", sa.Text),
        ),
        "members": sa.Table(
            "members",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.Text),
        ),
        "member_addresses": sa.Table(
            "member_addresses",
            metadata,
            sa.Column("member_id", sa.Integer, primary_key=True),
            sa.Column("street", sa.Text),
        ),
        "patrons": sa.Table(
            "patrons",
            metadata,
            sa.Column("id", sa.Uuid, primary_key=True),
            sa.Column("name", sa.Text),
        ),
    }
    return metadata, tables


def _monolith_rows() -> dict[str, list[dict[str, Any]]]:
    books = [
        {
            "id": n,
            "title": f"Book {n} | ☃",
            "state": STATES[n % 4],
            "meta": {"tags": ["a", n], "z": None, "price": n * 1.5, "nested": {"k": "v|\\"}},
            "notes": "" if n % 3 == 0 else f"note {n}",
            "fee": f"{n}.{n % 100:02d}",
        }
        for n in range(1, ROWS + 1)
    ]
    return {
        "copies": [
            {"branch_id": n % 7, "isbn": f"{ISBNS[n % len(ISBNS)]}-{n}", "shelf": f"S{n}"}
            for n in range(ROWS)
        ],
        "books": books,
        "loans": [{"id": n, "book_id": (n % ROWS) + 1} for n in range(1, ROWS + 1)],
        "members": [
            {"id": n, "name": f"Member {n}", "street": f"{n} Main St"} for n in range(1, ROWS + 1)
        ],
        "patrons": [{"id": n, "name": f"Patron {n}"} for n in range(1, ROWS + 1)],
    }


def _service_rows(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    service: dict[str, list[dict[str, Any]]] = {}
    titles = {book["id"]: book["title"] for book in rows["books"]}
    for name in ("copies", "books", "members", "member_addresses"):
        source = rows["members" if name == "member_addresses" else name]
        service[name] = [MAPPING.table(name).to_service(row) for row in source]
    service["loans"] = [
        {**MAPPING.table("loans").to_service(row), "book_title": titles[row["book_id"]]}
        for row in rows["loans"]
    ]
    service["patrons"] = [
        {"id": _patron(row["id"]), **MAPPING.table("patrons").to_service(row)}
        for row in rows["patrons"]
    ]
    return service


def load(urls: tuple[str, str]) -> None:
    monolith, service = engine(urls[0]), engine(urls[1])
    m_meta, m_tables = _monolith_tables(monolith.dialect.name)
    s_meta, s_tables = _service_tables(service.dialect.name)
    m_meta.create_all(monolith)
    s_meta.create_all(service)
    id_map_metadata.create_all(service)
    rows = _monolith_rows()
    for name, table in m_tables.items():
        insert(monolith, table, rows[name])
    service_rows = _service_rows(rows)
    for name, table in s_tables.items():
        insert(service, table, service_rows[name])
    insert(
        service,
        id_map_table,
        [
            {"pair": "patrons", "monolith_key": str(row["id"]), "service_key": str(srow["id"])}
            for row, srow in zip(rows["patrons"], service_rows["patrons"], strict=True)
        ],
    )


@pytest.fixture(params=["sqlite", "pg"])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/m.db", f"sqlite:///{tmp_path}/s.db"
    pg: tuple[str, str] = request.getfixturevalue("pg_urls")
    return pg


def found(report: Report) -> dict[tuple[str, str], tuple[str, tuple[str, ...]]]:
    return {
        (table.name, str(d.key)): (d.kind.value, tuple(sorted(f.field for f in d.fields)))
        for table in report.tables
        for d in table.divergences
    }


def run(urls: tuple[str, str]) -> Report:
    report = reconcile(MAPPING, *urls, options=OPTIONS)
    assert {table.name: table.error for table in report.tables if table.error} == {}
    return report


def test_every_shape_is_clean_when_the_data_agrees(urls: tuple[str, str]) -> None:
    load(urls)
    report = run(urls)
    assert found(report) == {}
    assert report.verdict is Verdict.CLEAN
    counts = {table.name: (table.monolith_rows, table.service_rows) for table in report.tables}
    assert counts == {name: (ROWS, ROWS) for name in counts}
    assert len(counts) == 6


def test_a_json_document_written_differently_but_equal_is_clean(urls: tuple[str, str]) -> None:
    load(urls)
    with engine(urls[0]).begin() as conn:
        # Same document: other key order, other spacing (json keeps the text as written).
        raw = '{ "nested": {"k": "v|\\\\"},"z": null, "price": 3.0 , "tags": ["a", 2]}'
        conn.execute(sa.text("UPDATE library_book SET meta = :m WHERE id = 2"), {"m": raw})
    assert found(run(urls)) == {}


Expected = dict[tuple[str, str], tuple[str, tuple[str, ...] | None]]


def _plant(urls: tuple[str, str]) -> Expected:
    """One divergence of each kind, for each shape; returns what the report must say."""
    rows = _monolith_rows()
    copies = rows["copies"]
    key_text = MAPPING.table("copies").key.text_of
    stray = uuid.UUID(int=999_999)
    with engine(urls[1]).begin() as conn:
        gone, changed = copies[1], copies[3]
        conn.execute(
            sa.text("DELETE FROM copies WHERE branch = :b AND isbn = :i"),
            {"b": gone["branch_id"], "i": gone["isbn"]},
        )
        conn.execute(
            sa.text("UPDATE copies SET shelf = 'moved' WHERE branch = :b AND isbn = :i"),
            {"b": changed["branch_id"], "i": changed["isbn"]},
        )
        conn.execute(sa.text("UPDATE books SET state = 'lost' WHERE id = 5"))  # monolith: o
        conn.execute(sa.text("UPDATE books SET fee_cents = fee_cents + 1 WHERE id = 6"))
        conn.execute(sa.text("UPDATE books SET notes = '' WHERE id = 9"))  # monolith: ''
        conn.execute(sa.text("UPDATE loans SET book_title = 'stale' WHERE id = 20"))
        conn.execute(
            sa.text("UPDATE member_addresses SET street = 'elsewhere' WHERE member_id = 4")
        )
        patrons = _service_tables(conn.dialect.name)[1]["patrons"]
        conn.execute(patrons.update().where(patrons.c.id == _patron(7)).values(name="renamed"))
        conn.execute(patrons.delete().where(patrons.c.id == _patron(8)))
        conn.execute(patrons.insert().values(id=stray, name="nobody"))
    with engine(urls[0]).begin() as conn:
        extra = copies[5]
        conn.execute(
            sa.text("DELETE FROM library_copy WHERE branch_id = :b AND isbn = :i"),
            {"b": extra["branch_id"], "i": extra["isbn"]},
        )
        books = _monolith_tables(conn.dialect.name)[1]["books"]
        conn.execute(books.update().where(books.c.id == 7).values(meta={"a": 1}))
        conn.execute(sa.text("UPDATE library_book SET state = 'q' WHERE id = 8"))  # unmapped
        conn.execute(sa.text("UPDATE library_book SET title = 'Retitled' WHERE id = 11"))
        conn.execute(sa.text("UPDATE library_book SET fee = '1.5x' WHERE id = 12"))
    return {
        ("copies", key_text((gone["branch_id"], gone["isbn"]))): ("missing_in_service", ()),
        ("copies", key_text((changed["branch_id"], changed["isbn"]))): ("differing", ("shelf",)),
        ("copies", key_text((extra["branch_id"], extra["isbn"]))): ("missing_in_monolith", ()),
        ("books", "5"): ("differing", ("state",)),
        ("books", "6"): ("differing", ("fee_cents",)),
        ("books", "7"): ("differing", ("meta",)),
        ("books", "8"): ("differing", None),
        ("books", "9"): ("differing", ("notes",)),
        ("books", "11"): ("differing", ("title",)),
        ("books", "12"): ("differing", None),
        ("loans", "20"): ("differing", ("book_title",)),
        ("loans", "10"): ("differing", ("book_title",)),  # its book (11) was retitled
        ("member_addresses", "4"): ("differing", ("street",)),
        ("patrons", "7"): ("differing", ("name",)),
        ("patrons", "8"): ("missing_in_service", ()),
        ("patrons", f"?unmapped:{stray}"): ("missing_in_monolith", ()),
    }


def _patron(n: int) -> uuid.UUID:
    return uuid.UUID(int=n * 104729)


def test_each_planted_divergence_is_found_under_its_key_text(urls: tuple[str, str]) -> None:
    load(urls)
    expected = _plant(urls)
    report = run(urls)
    seen = found(report)
    # A value the mapping cannot convert reports every field (its row has no canonical form).
    loose = {key for key, (_, fields) in expected.items() if fields is None}
    assert {key: value[0] for key, value in seen.items()} == {
        key: value[0] for key, value in expected.items()
    }
    assert {k: v for k, v in seen.items() if k not in loose} == {
        k: v for k, v in expected.items() if k not in loose
    }
    for key in loose:
        assert "__error__" in seen[key][1]
    members = report.table("members")
    assert members.divergences == []
    assert report.verdict is not Verdict.CLEAN


def test_repair_writes_every_shape_but_refuses_an_id_map_pair(
    urls: tuple[str, str], tmp_path: Path
) -> None:
    load(urls)
    _plant(urls)
    report = run(urls)
    only_patrons = report.model_copy(
        update={"tables": [t for t in report.tables if t.name == "patrons"]}
    )
    with pytest.raises(RepairRefused, match="'patrons' keeps an id map"):
        plan_repair(only_patrons, MAPPING, *urls, phase="dual_write")
    with pytest.raises(RepairRefused, match=r"key 8: .*'q' is not a monolith value"):
        plan_repair(_without(report, "patrons"), MAPPING, *urls, phase="dual_write")
    with engine(urls[0]).begin() as conn:  # the monolith's bad values corrected at the source
        conn.execute(
            sa.text("UPDATE library_book SET state = 'o', fee = '1.50' WHERE id IN (8, 12)")
        )
    plan = plan_repair(_without(report, "patrons"), MAPPING, *urls, phase="dual_write")
    written = apply_repair(plan, MAPPING, *urls, audit_url=f"sqlite:///{tmp_path}/audit.db")
    assert written == len(plan.actions) > 0
    after = run(urls)
    assert {name for name, _ in found(after)} == {"patrons"}


def _without(report: Report, name: str) -> Report:
    return report.model_copy(update={"tables": [t for t in report.tables if t.name != name]})


ORDER_LINES = ContextMapping.model_validate(
    {
        "context": "shop",
        "tables": [
            {
                "name": "lines",
                "monolith_table": "shop_orderline",
                "service_table": "order_lines",
                "key": {
                    "monolith": ["order_id", "line"],
                    "service": ["order_id", "line"],
                    "type": ["integer", "text"],
                },
                "fields": [{"monolith": "qty", "service": "qty"}],
            }
        ],
    }
)


@pytest.mark.parametrize(
    ("rows_per_key", "segment_size", "levels"),
    [
        (1, 1024 * 1024, (256, 16, 4)),
        (4, 256 * 1024, (64, 4, 1)),
        (8, 128 * 1024, (32, 2, 1)),
        (64, 16 * 1024, (4, 1)),
    ],
)
def test_bucket_sizes_count_first_column_values_of_a_ranged_composite_key(
    rows_per_key: int, segment_size: int, levels: tuple[int, ...]
) -> None:
    """A bucket of a ranged composite key holds about as many rows as an integer key's:
    the sizes are divided by the rows per first-column value, never below one value."""
    scaled = per_key_value(ReconcileOptions(), rows_per_key)
    assert (scaled.segment_size, scaled.levels) == (segment_size, levels)


def test_bucket_sizes_that_would_not_divide_are_kept() -> None:
    options = ReconcileOptions(segment_size=3000, levels=(300, 30))
    assert per_key_value(options, 4) == options


def test_a_composite_key_with_a_nearly_unique_integer_first_column_is_ranged(
    pg_urls: tuple[str, str],
) -> None:
    """PostgreSQL's statistics say order_id is nearly unique: the pair is segmented by its
    ranges (through the primary key's index) and still reports key texts."""
    for url, table in zip(pg_urls, ("shop_orderline", "order_lines"), strict=True):
        with engine(url).begin() as conn:
            conn.execute(
                sa.text(
                    f"CREATE TABLE {table} (order_id integer, line text, qty integer, "
                    "PRIMARY KEY (order_id, line))"
                )
            )
            conn.execute(
                sa.text(
                    f"INSERT INTO {table} SELECT g / 2, 'L|' || (g % 2), g FROM "
                    "generate_series(0, 3999) AS g"
                )
            )
            conn.execute(sa.text(f"ANALYZE {table}"))
    pair = inspect_pair(ORDER_LINES.table("lines"), engine(pg_urls[0]), engine(pg_urls[1]))
    assert pair.key_kind == "int"
    assert not pair.reports_int
    assert pair.rows_per_key == 2  # two lines per order: buckets count orders by halves
    clean = reconcile(ORDER_LINES, *pg_urls, options=OPTIONS).table("lines")
    assert (clean.divergences, clean.error) == ([], None)
    with engine(pg_urls[1]).begin() as conn:
        conn.execute(
            sa.text("UPDATE order_lines SET qty = 0 WHERE order_id = 700 AND line = 'L|1'")
        )
        conn.execute(sa.text("DELETE FROM order_lines WHERE order_id = 12 AND line = 'L|0'"))
    table = reconcile(ORDER_LINES, *pg_urls, options=OPTIONS).table("lines")
    assert {d.key: d.kind.value for d in table.divergences} == {
        "700|L\\|1": "differing",
        "12|L\\|0": "missing_in_service",
    }
    assert table.rows_fetched <= 64  # at most two last-level ranges (8 orders of 2 lines) a side


def test_key_hash_buckets_get_statistics_on_their_expression(pg_urls: tuple[str, str]) -> None:
    """Few orders, many lines: buckets by key-text hash, whose expression gets statistics
    (PostgreSQL would otherwise guess a group per key and aggregate serially)."""
    for url, table in zip(pg_urls, ("shop_orderline", "order_lines"), strict=True):
        with engine(url).begin() as conn:
            conn.execute(
                sa.text(
                    f"CREATE TABLE {table} (order_id integer, line text, qty integer, "
                    "PRIMARY KEY (order_id, line))"
                )
            )
            conn.execute(
                sa.text(
                    f"INSERT INTO {table} SELECT g % 3, 'L' || g, g FROM "
                    "generate_series(0, 2999) AS g"
                )
            )
            conn.execute(sa.text(f"ANALYZE {table}"))
    options = ReconcileOptions(
        grace_seconds=0.05, max_rechecks=2, levels=(64, 8), statistics_min_rows=1000
    )
    table = reconcile(ORDER_LINES, *pg_urls, options=options).table("lines")
    assert inspect_pair(ORDER_LINES.table("lines"), *map(engine, pg_urls)).key_kind == "text"
    assert (table.divergences, table.error) == ([], None)
    assert sum("keyhash" in note for note in table.notes) == 2
    with engine(pg_urls[0]).connect() as conn:
        names = conn.execute(
            sa.text("SELECT stxname FROM pg_statistic_ext WHERE stxname LIKE 'strangler_%'")
        ).scalars()
        assert [name for name in names if "keyhash" in name] == [
            "strangler_shop_orderline_keyhash_hashpart1_64"
        ]


def test_an_orphan_of_a_composite_key_pair_is_reported_by_its_key_text(tmp_path: Path) -> None:
    plan = Plan.model_validate(
        {
            "context": "library",
            "service": "library",
            "upstream": "library",
            "tables": [
                {
                    "name": "books",
                    "monolith_table": "library_book",
                    "service_table": "books",
                    "key": {"monolith": "id", "service": "id"},
                    "fields": [{"monolith": "title", "service": "title"}],
                },
                {
                    "name": "copies",
                    "monolith_table": "library_copy",
                    "service_table": "copies",
                    "key": {
                        "monolith": ["branch_id", "isbn"],
                        "service": ["branch", "isbn"],
                        "type": ["integer", "text"],
                    },
                    "fields": [{"monolith": "book_id", "service": "book_id"}],
                    "references": [{"column": "book_id", "context": "library", "table": "books"}],
                },
            ],
        }
    )
    urls = (f"sqlite:///{tmp_path}/m.db", f"sqlite:///{tmp_path}/s.db")
    with engine(urls[0]).begin() as conn:
        conn.execute(sa.text("CREATE TABLE library_book (id INTEGER PRIMARY KEY, title TEXT)"))
        conn.execute(
            sa.text(
                "CREATE TABLE library_copy (branch_id INTEGER, isbn TEXT, book_id INTEGER, "
                "PRIMARY KEY (branch_id, isbn))"
            )
        )
        conn.execute(sa.text("INSERT INTO library_book VALUES (1, 'Dune')"))
        conn.execute(
            sa.text("INSERT INTO library_copy VALUES (3, 'x|y', 1), (3, 'a\\b', 9), (4, 'z', 9)")
        )

    report = check_references({"library": plan}, "library", lambda _: Located(Phase.SHARED, *urls))
    [check] = report.checks
    assert check.error is None
    assert [(row.key, row.value) for row in check.rows] == [("3|a\\\\b", 9), ("4|z", 9)]


def test_an_incremental_run_translates_an_id_map_pairs_service_events(tmp_path: Path) -> None:
    """Service events of an id-map pair name service keys; the run checks the monolith key
    the map gives each (and an unmapped one as such)."""
    urls = (f"sqlite:///{tmp_path}/m.db", f"sqlite:///{tmp_path}/s.db")
    load(urls)
    stray = uuid.UUID(int=424242)
    with engine(urls[1]).begin() as conn:
        patrons = _service_tables("sqlite")[1]["patrons"]
        conn.execute(patrons.update().where(patrons.c.id == _patron(7)).values(name="renamed"))
        conn.execute(patrons.insert().values(id=stray, name="nobody"))
        outbox_table.create(conn)
        conn.execute(
            outbox_table.insert(),
            [
                {
                    "event_id": str(uuid.uuid4()),
                    "context": "library",
                    "aggregate_type": "patrons",
                    "aggregate_key": str(key),
                    "operation": "upsert",
                    "origin": "service",
                    "status": "applied",
                }
                for key in (_patron(7), stray)
            ],
        )
    baseline = Baseline(watermark={"monolith": 0, "service": 0})
    report = reconcile(
        MAPPING,
        *urls,
        tables=["patrons"],
        options=OPTIONS,
        incremental=True,
        baselines={"patrons": baseline},
    )
    table = report.table("patrons")
    assert table.error is None
    assert table.keys_checked == 2
    assert {d.key: d.kind.value for d in table.divergences} == {
        "7": "differing",
        f"?unmapped:{stray}": "missing_in_monolith",
    }


def test_a_pending_service_event_of_an_id_map_pair_marks_its_key_in_flight(
    tmp_path: Path,
) -> None:
    urls = (f"sqlite:///{tmp_path}/m.db", f"sqlite:///{tmp_path}/s.db")
    load(urls)
    with engine(urls[1]).begin() as conn:
        patrons = _service_tables("sqlite")[1]["patrons"]
        conn.execute(patrons.update().where(patrons.c.id == _patron(7)).values(name="renamed"))
        conn.execute(patrons.update().where(patrons.c.id == _patron(9)).values(name="renamed"))
        outbox_table.create(conn)
        conn.execute(
            outbox_table.insert().values(
                event_id=str(uuid.uuid4()),
                context="library",
                aggregate_type="patrons",
                aggregate_key=str(_patron(7)),
                operation="upsert",
                origin="service",
                status="pending",
            )
        )
    table = reconcile(MAPPING, *urls, tables=["patrons"], options=OPTIONS).table("patrons")
    assert {d.key: d.in_flight for d in table.divergences} == {"7": True, "9": False}
