"""Shadow results in a SQL database: the embedded default, no Redis needed.

The same results as :class:`~strangler_proxy.shadow.store.RedisShadowStore` (per-route
counters in time buckets, top differing fields, capped redacted samples, learned
noise), kept in five tables of the control-plane database (SQLite by default,
PostgreSQL works too). Several processes share it: each batch is one transaction,
counters are added with ``INSERT ... ON CONFLICT DO UPDATE`` and SQLite
transactions start with ``BEGIN IMMEDIATE`` under a busy timeout (readers ``BEGIN
DEFERRED``), so concurrent writers queue instead of failing. ``namespace`` plays the Redis prefix's part.

    store = SqlShadowStore.from_url("sqlite:///var/control.sqlite3")
    store.record_many(outcomes)
    rate, compared = store.match_rate(context="catalog")
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite

from migration_plans.core.database import engine, sqlalchemy_url
from strangler_proxy.shadow.store import COUNTERS, Counts, Outcome, _SharedStore

__all__ = ["SqlShadowStore", "shadow_engine"]

metadata = MetaData()

routes_table = Table(
    "shadow_routes",
    metadata,
    Column("namespace", String(200), primary_key=True),
    Column("route", String(200), primary_key=True),
    Column("context", String(200), nullable=False, default=""),
)
counts_table = Table(
    "shadow_counts",
    metadata,
    Column("namespace", String(200), primary_key=True),
    Column("route", String(200), primary_key=True),
    Column("bucket", Integer, primary_key=True),
    *(Column(name, Integer, nullable=False, default=0) for name in COUNTERS),
)
fields_table = Table(
    "shadow_fields",
    metadata,
    Column("namespace", String(200), primary_key=True),
    Column("route", String(200), primary_key=True),
    Column("bucket", Integer, primary_key=True),
    Column("path", String(500), primary_key=True),
    Column("count", Integer, nullable=False, default=0),
)
samples_table = Table(
    "shadow_samples",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("namespace", String(200), nullable=False),
    Column("route", String(200), nullable=False),
    Column("at", Float, nullable=False),
    Column("document", Text, nullable=False),
    Index("ix_shadow_samples_route", "namespace", "route", "id"),
)
noise_table = Table(
    "shadow_noise",
    metadata,
    Column("namespace", String(200), primary_key=True),
    Column("route", String(200), primary_key=True),
    Column("path", String(500), primary_key=True),
)

_ENGINES: dict[str, Engine] = {}


def shadow_engine(url: str) -> Engine:
    """One engine per URL and process (:func:`migration_plans.core.database.engine`'s
    policy), with the shadow tables created."""
    url = sqlalchemy_url(url)
    if url not in _ENGINES:
        created = engine(url)
        metadata.create_all(created)
        _add_new_counters(created)
        _ENGINES[url] = created
    return _ENGINES[url]


def _add_new_counters(created: Engine) -> None:
    """Add counter columns newer than an existing ``shadow_counts`` table (``shed``)."""
    present = {column["name"] for column in inspect(created).get_columns("shadow_counts")}
    missing = [name for name in COUNTERS if name not in present]
    with created.begin() as connection:
        for name in missing:
            connection.execute(
                text(f"ALTER TABLE shadow_counts ADD COLUMN {name} INTEGER NOT NULL DEFAULT 0")
            )


def _forget_engines_after_fork() -> None:
    """A forked worker opens its own connections (never a parent's SQLite handle)."""
    for inherited in _ENGINES.values():
        inherited.dispose(close=False)


os.register_at_fork(after_in_child=_forget_engines_after_fork)


def _insert(connection: Connection, table: Table) -> Any:
    dialect = connection.dialect.name
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"shadow results on {dialect}: use SQLite, PostgreSQL or Redis")


def _add_on_conflict(
    connection: Connection, table: Table, keys: list[str], added: list[str], rows: list[Any]
) -> None:
    """Insert ``rows``; where the key exists, add the ``added`` columns to the stored ones."""
    if not rows:
        return
    statement = _insert(connection, table)
    statement = statement.on_conflict_do_update(
        index_elements=keys,
        set_={name: table.c[name] + statement.excluded[name] for name in added},
    )
    connection.execute(statement, rows)


def _keep_first(connection: Connection, table: Table, keys: list[str], rows: list[Any]) -> None:
    if rows:
        statement = _insert(connection, table).on_conflict_do_nothing(index_elements=keys)
        connection.execute(statement, rows)


class SqlShadowStore(_SharedStore):
    """Shadow results in SQL tables, shared by proxy replicas, the report and the gates."""

    def __init__(self, engine: Engine, **options: Any) -> None:
        super().__init__(**options)
        self.engine = engine

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SqlShadowStore:
        return cls(shadow_engine(url), **options)

    def _read(self) -> Connection:
        return self.engine.connect().execution_options(sqlite_begin="DEFERRED")

    def record(self, outcome: Outcome) -> None:
        """Count the outcome in its bucket; keep a redacted sample of mismatches and errors."""
        self.record_many([outcome])

    def record_many(self, outcomes: Iterable[Outcome]) -> None:
        """Several outcomes in one transaction."""
        routes: dict[str, str] = {}
        counts: dict[tuple[str, int], Counter[str]] = {}
        fields: Counter[tuple[str, int, str]] = Counter()
        samples: list[dict[str, Any]] = []
        for outcome in outcomes:
            bucket = self._bucket(outcome.at)
            routes[outcome.route] = outcome.context
            counts.setdefault((outcome.route, bucket), Counter()).update(outcome.increments())
            fields.update((outcome.route, bucket, path) for path in outcome.field_paths())
            if outcome.kind in ("mismatched", "shadow_error"):
                samples.append(self._sample_row(outcome))
        if not routes:
            return
        with self.engine.begin() as connection:
            self._write_routes(connection, routes)
            self._write_counts(connection, counts)
            fields_rows = [
                {"namespace": self.prefix, "route": r, "bucket": b, "path": p, "count": n}
                for (r, b, p), n in fields.items()
            ]
            _add_on_conflict(
                connection, fields_table, ["namespace", "route", "bucket", "path"], ["count"],
                fields_rows,
            )  # fmt: skip
            if samples:
                connection.execute(samples_table.insert(), samples)
                for route in {row["route"] for row in samples}:
                    self._trim_samples(connection, route)
            self._expire(connection)

    def _sample_row(self, outcome: Outcome) -> dict[str, Any]:
        return {
            "namespace": self.prefix,
            "route": outcome.route,
            "at": outcome.at,
            "document": json.dumps(outcome.sample()),
        }

    def _write_routes(self, connection: Connection, routes: dict[str, str]) -> None:
        rows = [{"namespace": self.prefix, "route": r, "context": c} for r, c in routes.items()]
        statement = _insert(connection, routes_table)
        statement = statement.on_conflict_do_update(
            index_elements=["namespace", "route"], set_={"context": statement.excluded.context}
        )
        connection.execute(statement, rows)

    def _write_counts(
        self, connection: Connection, counts: dict[tuple[str, int], Counter[str]]
    ) -> None:
        rows = [
            {"namespace": self.prefix, "route": route, "bucket": bucket}
            | {name: amounts[name] for name in COUNTERS}
            for (route, bucket), amounts in counts.items()
        ]
        keys = ["namespace", "route", "bucket"]
        _add_on_conflict(connection, counts_table, keys, list(COUNTERS), rows)

    def _trim_samples(self, connection: Connection, route: str) -> None:
        newest = (
            select(samples_table.c.id)
            .where(samples_table.c.namespace == self.prefix, samples_table.c.route == route)
            .order_by(samples_table.c.id.desc())
            .limit(self.max_samples)
        )
        connection.execute(
            delete(samples_table).where(
                samples_table.c.namespace == self.prefix,
                samples_table.c.route == route,
                samples_table.c.id.not_in(newest.scalar_subquery()),
            )
        )

    def _expire(self, connection: Connection) -> None:
        cutoff = self._bucket(time.time() - self.retention_seconds)
        for table in (counts_table, fields_table):
            connection.execute(
                delete(table).where(table.c.namespace == self.prefix, table.c.bucket < cutoff)
            )

    def routes(self) -> dict[str, str]:
        query = select(routes_table.c.route, routes_table.c.context).where(
            routes_table.c.namespace == self.prefix
        )
        with self._read() as connection:
            return {str(route): str(context) for route, context in connection.execute(query)}

    def _since(self, table: Table, route: str, since: float | None) -> Any:
        condition = (table.c.namespace == self.prefix) & (table.c.route == route)
        if since is not None:
            condition = condition & (table.c.bucket >= self._bucket(since))
        return condition

    def series(self, route: str, *, since: float | None = None) -> list[tuple[float, Counts]]:
        """Counters per time bucket, oldest first (for plotting the match rate)."""
        columns = [counts_table.c[name] for name in COUNTERS]
        query = (
            select(counts_table.c.bucket, *columns)
            .where(self._since(counts_table, route, since))
            .order_by(counts_table.c.bucket)
        )
        with self._read() as connection:
            rows = connection.execute(query).all()
        return [(float(row[0]), Counts(*(int(value) for value in row[1:]))) for row in rows]

    def route_counts(self, route: str, since: float | None) -> Counts:
        total = Counts()
        for _, counts in self.series(route, since=since):
            total = total + counts
        return total

    def top_fields(
        self, route: str, *, since: float | None = None, limit: int = 10
    ) -> list[tuple[str, int]]:
        """The fields that differed most often, with their counts."""
        query = select(fields_table.c.path, fields_table.c["count"]).where(
            self._since(fields_table, route, since)
        )
        totals: Counter[str] = Counter()
        with self._read() as connection:
            for path, count in connection.execute(query):
                totals[str(path)] += int(count)
        return totals.most_common(limit)

    def samples(
        self, route: str, *, since: float | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        """Newest-first mismatch and error samples of ``route``."""
        query = (
            select(samples_table.c.document)
            .where(samples_table.c.namespace == self.prefix, samples_table.c.route == route)
            .order_by(samples_table.c.id.desc())
            .limit(self.max_samples)
        )
        if since is not None:
            query = query.where(samples_table.c.at >= since)
        with self._read() as connection:
            found = [json.loads(document) for (document,) in connection.execute(query)]
        return found[:limit]

    def save_noise(self, route: str, paths: Iterable[str]) -> None:
        rows = [{"namespace": self.prefix, "route": route, "path": path} for path in set(paths)]
        if rows:
            with self.engine.begin() as connection:
                _keep_first(connection, noise_table, ["namespace", "route", "path"], rows)

    def noise(self) -> dict[str, tuple[str, ...]]:
        query = select(noise_table.c.route, noise_table.c.path).where(
            noise_table.c.namespace == self.prefix
        )
        learned: dict[str, set[str]] = {}
        with self._read() as connection:
            for route, path in connection.execute(query):
                learned.setdefault(str(route), set()).add(str(path))
        return {route: tuple(sorted(paths)) for route, paths in learned.items()}

    def clear(self) -> int:
        """Delete this namespace's results (tests, or starting a fresh comparison)."""
        removed = 0
        with self.engine.begin() as connection:
            for table in (routes_table, counts_table, fields_table, samples_table, noise_table):
                result = connection.execute(delete(table).where(table.c.namespace == self.prefix))
                removed += int(result.rowcount or 0)
        return removed

    def close(self) -> None:
        """Nothing to release per store: the engine is shared by the process."""
