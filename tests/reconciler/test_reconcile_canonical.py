"""Canonical rendering: SQL on PostgreSQL, SQL functions on SQLite and the Python reference agree."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from migration_plans.core.database import sqlalchemy_url
from migration_plans.core.mapping import TableMapping
from reconciler.canonical import Op, OpKind, md5_hash64, render, render_timestamp, row_text
from reconciler.connections import engine_for, snapshot
from reconciler.schema import inspect_pair
from reconciler.sql import prepare, quote_ident, row_hash_sql

MAPPING = TableMapping.model_validate(
    {
        "name": "things",
        "monolith_table": "m_things",
        "service_table": "things",
        "key": {"monolith": "id", "service": "id"},
        "fields": [
            {"monolith": "label", "service": "title"},
            {"monolith": "qty", "service": "quantity"},
            {"monolith": "ratio", "service": "ratio"},
            {"monolith": "amount", "service": "amount"},
            {"monolith": "price", "service": "price_cents", "transform": "decimal_cents"},
            {
                "monolith": "active",
                "service": "status",
                "transform": "bool_enum",
                "true_value": "on",
                "false_value": "off",
            },
            {"monolith": "flag", "service": "flag"},
            {"monolith": "at", "service": "at", "transform": "timestamp", "precision": "us"},
            {"monolith": "at_ms", "service": "at_ms", "transform": "timestamp", "precision": "ms"},
            {"monolith": "at_s", "service": "at_s", "transform": "timestamp", "precision": "s"},
            {"monolith": "naive", "service": "naive", "transform": "timestamp"},
            {"monolith": "day", "service": "day"},
        ],
    }
)


def _tables() -> tuple[sa.MetaData, sa.MetaData]:
    mono, serv = sa.MetaData(), sa.MetaData()
    sa.Table(
        "m_things",
        mono,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("label", sa.Text),
        sa.Column("qty", sa.Integer),
        sa.Column("ratio", sa.Float),
        sa.Column("amount", sa.Numeric(12, 4)),
        sa.Column("price", sa.Numeric(10, 2)),
        sa.Column("active", sa.Boolean),
        sa.Column("flag", sa.Boolean),
        sa.Column("at", sa.DateTime(timezone=True)),
        sa.Column("at_ms", sa.DateTime(timezone=True)),
        sa.Column("at_s", sa.DateTime(timezone=True)),
        sa.Column("naive", sa.DateTime()),
        sa.Column("day", sa.Date),
    )
    sa.Table(
        "things",
        serv,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("title", sa.String(100)),
        sa.Column("quantity", sa.BigInteger),
        sa.Column("ratio", sa.Float),
        sa.Column("amount", sa.Numeric(14, 6)),
        sa.Column("price_cents", sa.Integer),
        sa.Column("status", sa.String(8)),
        sa.Column("flag", sa.Boolean),
        sa.Column("at", sa.DateTime(timezone=True)),
        sa.Column("at_ms", sa.DateTime(timezone=True)),
        sa.Column("at_s", sa.DateTime(timezone=True)),
        sa.Column("naive", sa.DateTime()),
        sa.Column("day", sa.Date),
    )
    return mono, serv


PLUS2 = timezone(timedelta(hours=2))
MOMENT = datetime(2026, 3, 29, 1, 30, 5, 123456, tzinfo=UTC)

ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "label": "plain",
        "qty": 3,
        "ratio": 1.5,
        "amount": Decimal("1.5000"),
        "price": Decimal("79.19"),
        "active": True,
        "flag": False,
        "at": MOMENT,
        "at_ms": MOMENT,
        "at_s": MOMENT,
        "naive": datetime(2026, 1, 1, 0, 0, 0),
        "day": date(2026, 2, 28),
    },
    {
        "id": 2,
        "label": "ünïcødé ☕ | 1:x ~",
        "qty": -7,
        "ratio": 0.1,
        "amount": Decimal("100"),
        "price": Decimal("0.05"),
        "active": False,
        "flag": True,
        "at": MOMENT.astimezone(PLUS2),
        "at_ms": datetime(2026, 3, 29, 1, 30, 5, 120000, tzinfo=UTC),
        "at_s": datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
        "naive": datetime(2026, 1, 1, 0, 0, 0, 500),
        "day": date(1970, 1, 1),
    },
    {"id": 3, **dict.fromkeys([f.monolith for f in MAPPING.fields])},
    {
        "id": 4,
        "label": "",
        "qty": 0,
        "ratio": -2.25,
        "amount": Decimal("-0.0001"),
        "price": Decimal("100.00"),
        "active": True,
        "flag": True,
        "at": datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC),
        "at_ms": datetime(2026, 7, 1, 12, 0, 0, 999, tzinfo=UTC),
        "at_s": datetime(2026, 7, 1, 12, 0, 0, 999999, tzinfo=UTC),
        "naive": None,
        "day": None,
    },
]


@pytest.fixture(params=["sqlite", "pg"])
def backend_urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/m.db", f"sqlite:///{tmp_path}/s.db"
    urls: tuple[str, str] = request.getfixturevalue("pg_urls")
    return urls


def _as_stored(url: str, row: dict[str, Any]) -> dict[str, Any]:
    """SQLite keeps no offset: like Django, store aware timestamps converted to UTC."""
    if not url.startswith("sqlite"):
        return row
    return {
        name: value.astimezone(UTC) if isinstance(value, datetime) and value.tzinfo else value
        for name, value in row.items()
    }


def _load(urls: tuple[str, str]) -> None:
    mono, serv = _tables()
    for metadata, url, rows in (
        (mono, urls[0], [_as_stored(urls[0], row) for row in ROWS]),
        (serv, urls[1], [MAPPING.to_service(row) for row in ROWS]),
    ):
        engine = sa.create_engine(sqlalchemy_url(url))
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(next(iter(metadata.tables.values())).insert(), rows)
        engine.dispose()


def _hashes(urls: tuple[str, str], mode: str) -> tuple[dict[int, int], dict[int, int]]:
    monolith, service = engine_for(urls[0]), engine_for(urls[1])
    pair = inspect_pair(MAPPING, monolith, service, mode)  # type: ignore[arg-type]
    found = []
    for role, engine in (("monolith", monolith), ("service", service)):
        side = pair.side(role)  # type: ignore[arg-type]
        with snapshot(engine) as conn:
            prepare(conn, pair, role)  # type: ignore[arg-type]
            sql = (
                f"SELECT {quote_ident(side.key)}, {row_hash_sql(pair, role, engine.dialect.name)} "  # type: ignore[arg-type]
                f"FROM {quote_ident(side.table)}"
            )
            found.append({int(k): int(h) for k, h in conn.exec_driver_sql(sql)})
    return found[0], found[1]


def _reference() -> dict[int, int]:
    """Hashes of the Python reference rendering of the canonical (service-form) rows."""
    ops = []
    for field in MAPPING.fields:
        kind = {
            "decimal_cents": OpKind.DECIMAL,
            "bool_enum": OpKind.TEXT,
            "timestamp": OpKind.TIMESTAMP,
        }.get(field.transform)
        ops.append((field, kind))
    found = {}
    for row in ROWS:
        service_row = MAPPING.to_service(row)
        texts = []
        for field, kind in ops:
            value = service_row[field.service]
            if kind is None:
                kind = {
                    int: OpKind.INT,
                    float: OpKind.FLOAT,
                    Decimal: OpKind.DECIMAL,
                    bool: OpKind.BOOL,
                    str: OpKind.TEXT,
                    date: OpKind.DATE,
                }.get(type(value), OpKind.TEXT)
            precision = getattr(field, "precision", "us")
            texts.append((Op(kind=kind, precision=precision), value))
        quoted = [field.service in ("title", "status") for field, _ in ops]
        text = row_text(row["id"], [op for op, _ in texts], quoted, [v for _, v in texts])
        found[row["id"]] = md5_hash64(text)
    return found


def test_canonical_hashes_equal_on_both_sides_and_the_python_reference(
    backend_urls: tuple[str, str],
) -> None:
    _load(backend_urls)
    monolith, service = _hashes(backend_urls, "md5")
    assert monolith == service
    assert monolith == _reference()


def test_hashtext_mode_agrees_between_postgresql_sides(pg_urls: tuple[str, str]) -> None:
    urls = pg_urls
    _load(urls)
    monolith, service = _hashes(urls, "hashtext")
    assert monolith == service
    assert len(set(monolith.values())) == len(ROWS)


def test_sqlite_and_postgresql_render_the_same_rows_alike(
    tmp_path: Path, pg_urls: tuple[str, str]
) -> None:
    sqlite_urls = (f"sqlite:///{tmp_path}/m.db", f"sqlite:///{tmp_path}/s.db")
    _load(sqlite_urls)
    _load(pg_urls)
    assert _hashes(sqlite_urls, "md5") == _hashes(pg_urls, "md5")
    mixed = (sqlite_urls[0], pg_urls[1])
    monolith, service = _hashes(mixed, "md5")
    assert monolith == service


def test_mapped_values_render_to_their_service_form() -> None:
    cents = Op(kind=OpKind.CENTS, scale=2)
    assert render(cents, Decimal("79.19")) == "7919"
    assert render(cents, 79.19) == "7919"  # SQLite hands back a float
    assert render(Op(kind=OpKind.DECIMAL), 7919) == "7919"
    assert render(cents, Decimal("79.19")) != render(Op(kind=OpKind.DECIMAL), 7900)
    assert render(Op(kind=OpKind.DECIMAL), Decimal("-0.00")) == "0"
    enum = Op(kind=OpKind.ENUM, true_value="active", false_value="archived")
    assert (render(enum, True), render(enum, 0), render(enum, None)) == ("active", "archived", None)
    assert render_timestamp("2026-01-01 10:00:00.120000", "us") == "2026-01-01 10:00:00.12"
    assert render_timestamp("2026-01-01T12:00:00.999+02:00", "s") == "2026-01-01 10:00:00"
    assert row_text(1, [Op(kind=OpKind.TEXT)], [True], ["a|b"]) == "1|3:a|b"
    assert row_text(1, [Op(kind=OpKind.TEXT)], [True], [None]) == "1|~"
