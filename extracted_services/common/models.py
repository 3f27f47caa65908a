"""Column types and naming conventions every service's ``models.py`` shares."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Integer, MetaData

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Id = BigInteger().with_variant(Integer, "sqlite")
"""Primary and foreign keys: 64-bit, and SQLite's rowid alias so ids autoincrement there."""


def service_metadata() -> MetaData:
    """A MetaData with the shared constraint naming convention."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """Now, timezone-aware, in UTC."""
    return datetime.now(UTC)
