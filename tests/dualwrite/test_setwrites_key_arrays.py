"""Keys travel to PostgreSQL as ``text[]`` literals built in Python: every key comes back
as it went, whatever characters it holds."""

from __future__ import annotations

import psycopg

from dualwrite.setwrites import _KEYS, _key_arrays
from migration_plans.testing.databases import libpq_url

ODD_KEYS = [
    ("products", "1"),
    ("copies", '7|978-0"quoted"'),
    ("copies", "3|back\\slash\\\\"),
    ("copies", "{braces},commas, and spaces "),
    ("copies", "NULL"),
    ("copies", ""),
    ("copies", "☕ \t tab\nnewline"),
    ('type "odd"', "'single'"),
]


def test_keys_of_every_character_come_back_unchanged(pg_url: str) -> None:
    with psycopg.connect(libpq_url(pg_url)) as conn:
        rows = conn.execute(f"SELECT k.t, k.k FROM {_KEYS}", _key_arrays(ODD_KEYS)).fetchall()
    assert rows == ODD_KEYS


def test_no_keys_is_an_empty_list(pg_url: str) -> None:
    with psycopg.connect(libpq_url(pg_url)) as conn:
        assert conn.execute(f"SELECT k.t, k.k FROM {_KEYS}", _key_arrays([])).fetchall() == []
