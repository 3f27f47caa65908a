"""The relay's help for the mapping's richer shapes: id-map keys, split tables, copied columns.

- **Id map** (``key: {..., id_map: true}``): an event's key is its source's key text;
  the target row has another key. :class:`KeyTranslator` looks the target key up in
  ``strangler_id_map`` (service database) and makes one for a new row: a service key
  (a UUID) in the relay's service transaction, with the map row; a monolith id
  reserved from the monolith's sequence (SQLite: one past the largest id, under the
  relay's write lock) and recorded in the service database in a transaction of its
  own BEFORE the monolith insert, so a crash between the two leaves the map row and
  the retry inserts with the same id, never a second row.
- **Split table** (two pairs on one monolith table): a pair writes only its own
  columns into the shared monolith row. :func:`missing_required` says which NOT NULL
  columns a pair cannot fill; such a pair only updates an existing row, and an event
  that finds none fails with :class:`SplitRowMissing` (retried, then dead-lettered:
  no values are invented).
- **Copied column** (``copy_of``): :func:`refresh_copies` sets a service table's copy
  of another pair's column from the service's referenced rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Table,
    bindparam,
    cast,
    func,
    select,
    text,
    tuple_,
    update,
)

from dualwrite.config import Direction
from dualwrite.partitions import Partition, PartitionError
from migration_plans.core import idmap
from migration_plans.core.keys import KeyType
from migration_plans.core.mapping import ContextMapping, CopyField, JsonField, TableMapping
from migration_plans.core.sqlnames import quote_ident

Key = tuple[str, str]
"""``(aggregate_type, aggregate_key)`` of an event."""


class IdMapError(ValueError):
    """A key the id map cannot translate or create (names the pair, key and reason)."""


class SplitRowMissing(LookupError):
    """A pair of a split table met no monolith row and may not create one (says why)."""


class KeyTranslator:
    """Source key text -> target key text for the id-map pairs of one context."""

    def __init__(self, mapping: ContextMapping, service: Engine) -> None:
        self.mapping = mapping
        self.service = service
        self.pairs = {pair.name for pair in mapping.tables if pair.key.id_map}

    def mapped(self, keys: Iterable[Key]) -> list[Key]:
        """The keys of ``keys`` that belong to id-map pairs."""
        return [key for key in keys if key[0] in self.pairs]

    def known(
        self, direction: Direction, keys: Iterable[Key], service: Connection | None = None
    ) -> dict[Key, str]:
        """The target key of each id-map key of ``keys`` that the map holds.

        ``service`` is the service transaction to read in (monolith -> service); without
        it a connection of its own reads the map (service -> monolith: the map is only
        ever extended before the rows it names are written).
        """
        wanted = self.mapped(keys)
        if not wanted:
            return {}
        if service is not None:
            return self._lookup(service, direction, wanted)
        with self.service.connect() as conn:
            return self._lookup(conn, direction, wanted)

    def _lookup(self, conn: Connection, direction: Direction, keys: list[Key]) -> dict[Key, str]:
        found: dict[Key, str] = {}
        for pair_name in sorted({key[0] for key in keys}):
            texts = [key[1] for key in keys if key[0] == pair_name]
            if direction is Direction.MONOLITH_TO_SERVICE:
                translated = idmap.service_keys(conn, pair_name, texts)
            else:
                translated = idmap.monolith_keys(conn, pair_name, texts)
            found.update({(pair_name, source): target for source, target in translated.items()})
        return found

    def source_keys(self, direction: Direction, targets: dict[Key, str]) -> dict[Key, Key]:
        """Target key -> source key (both as ``(aggregate_type, key text)``)."""
        return {(key[0], target): key for key, target in targets.items()}

    def create_service_keys(self, conn: Connection, keys: Sequence[Key]) -> dict[Key, str]:
        """New service keys for ``keys`` (monolith keys), recorded in ``conn``'s transaction."""
        made: dict[Key, str] = {}
        for key in keys:
            pair = self.mapping.table(key[0])
            kind = pair.key.service_types[0]
            if kind is KeyType.INTEGER:
                raise IdMapError(
                    f"id map of {pair.name!r}: monolith key {key[1]!r} has no service key and "
                    "the relay makes only uuid or text service keys (service_type integer: "
                    "let the service's sequence make them and copy the rows with the backfill)"
                )
            made[key] = str(uuid.uuid4())
        for pair_name in sorted({key[0] for key in made}):
            idmap.record(
                conn, pair_name, [(k[1], v) for k, v in sorted(made.items()) if k[0] == pair_name]
            )
        return made

    def reserve_monolith_keys(
        self, monolith: Connection, keys: Sequence[Key], tables: dict[str, Table]
    ) -> dict[Key, str]:
        """Monolith ids for ``keys`` (service keys), recorded in the map and committed.

        Runs inside the relay's monolith transaction (which holds the relay lock; on
        SQLite the write lock) and commits the map rows in a service transaction of its
        own before the caller inserts the rows.
        """
        made: dict[Key, str] = {}
        for pair_name in sorted({key[0] for key in keys}):
            pair = self.mapping.table(pair_name)
            if pair.key.types[0] is not KeyType.INTEGER:
                raise IdMapError(
                    f"id map of {pair.name!r}: service keys need monolith keys, and only an "
                    f"integer monolith key can be reserved ({pair.key.monolith!r} is "
                    f"{pair.key.types[0].value})"
                )
            wanted = sorted(key for key in keys if key[0] == pair_name)
            ids = self._reserve(monolith, pair, tables[pair_name], len(wanted))
            made.update({key: str(value) for key, value in zip(wanted, ids, strict=True)})
        with self.service.begin() as conn:
            for pair_name in sorted({key[0] for key in made}):
                idmap.record(
                    conn,
                    pair_name,
                    [(v, k[1]) for k, v in sorted(made.items()) if k[0] == pair_name],
                )
        return made

    def _reserve(
        self, monolith: Connection, pair: TableMapping, table: Table, count: int
    ) -> list[int]:
        column = pair.key.monolith
        if monolith.dialect.name == "postgresql":
            sequence = monolith.execute(
                select(func.pg_get_serial_sequence(quote_ident(table.name), column))
            ).scalar_one()
            if sequence is None:
                raise IdMapError(
                    f"id map of {pair.name!r}: {table.name}.{column} has no sequence "
                    "(serial or identity) to reserve monolith ids from"
                )
            rows = monolith.execute(
                text("SELECT nextval(CAST(:sequence AS regclass)) FROM generate_series(1, :count)"),
                {"sequence": sequence, "count": count},
            )
            return sorted(int(row[0]) for row in rows)
        # SQLite: one past the largest id of the table and of the ids reserved before
        # (a reservation whose insert has not happened yet), under the write lock.
        top = monolith.execute(select(func.max(table.c[column]))).scalar_one() or 0
        with self.service.connect() as conn:
            reserved = conn.execute(
                select(func.max(cast(idmap.id_map_table.c.monolith_key, BigInteger))).where(
                    idmap.id_map_table.c.pair == bindparam("pair")
                ),
                {"pair": pair.name},
            ).scalar_one()
        start = max(int(top), int(reserved or 0)) + 1
        return list(range(start, start + count))

    def forget(self, conn: Connection, direction: Direction, keys: Sequence[Key]) -> None:
        """Remove the map rows of deleted rows (``keys`` are source keys of ``direction``)."""
        for pair_name in sorted({key[0] for key in keys}):
            texts = [key[1] for key in keys if key[0] == pair_name]
            if direction is Direction.MONOLITH_TO_SERVICE:
                idmap.forget_monolith_keys(conn, pair_name, texts)
            else:
                idmap.forget_service_keys(conn, pair_name, texts)


def check_id_map_partitions(mapping: ContextMapping, partition: Partition) -> None:
    """:class:`PartitionError` when ``mapping`` has id-map pairs and ``partition`` is not whole.

    A row's events carry the monolith key one way and the service key the other, so
    their buckets differ: two partitions could apply both directions of one row at once.
    """
    pairs = sorted(pair.name for pair in mapping.tables if pair.key.id_map)
    if pairs and not partition.whole:
        raise PartitionError(
            f"context {mapping.context!r} has id-map pairs ({', '.join(pairs)}): a row's "
            "events carry the monolith key one way and the service key the other, so "
            "partitions could apply both directions of one row at once; run one relay "
            "partition (no --partitions)"
        )


def missing_required(pair: TableMapping, table: Table) -> list[str]:
    """NOT NULL columns of ``table`` (monolith) without a default that ``pair`` does not map.

    Empty: the pair can create a row of the table. Otherwise it can only update one.
    """
    own = set(pair.monolith_columns)
    return sorted(
        column.name
        for column in table.columns
        if not column.nullable
        and column.server_default is None
        and column.name not in own
        and not (column.primary_key and column.autoincrement is True)
    )


def split_pairs(mapping: ContextMapping) -> dict[str, list[TableMapping]]:
    """Monolith tables shared by more than one pair, with their pairs."""
    tables: dict[str, list[TableMapping]] = {}
    for pair in mapping.tables:
        tables.setdefault(pair.monolith_table, []).append(pair)
    return {name: pairs for name, pairs in tables.items() if len(pairs) > 1}


def split_row_missing(pair: TableMapping, key: str, missing: list[str], others: list[str]) -> str:
    """The reason an event of a split table's pair waits: names the row, columns and pairs."""
    return (
        f"{pair.monolith_table} row {key!r} does not exist yet and pair {pair.name!r} cannot "
        f"create it: NOT NULL column(s) {', '.join(missing)} belong to "
        f"{', '.join(repr(o) for o in others) or 'no pair'}; its event waits for that "
        "pair's row (retried, then dead-lettered; no values are invented)"
    )


def bindable(conn: Connection, value: Any) -> Any:
    """A key value as ``conn``'s driver takes it (SQLite keeps uuids as text)."""
    if isinstance(value, uuid.UUID) and conn.dialect.name != "postgresql":
        return str(value)
    return value


def copy_fields(pair: TableMapping) -> tuple[CopyField, ...]:
    """The pair's copied (``copy_of``) service columns."""
    return pair.copies


def refresh_copies(
    conn: Connection,
    mapping: ContextMapping,
    tables: dict[str, Table],
    final: dict[Key, Any],
    targets: dict[Key, str],
) -> None:
    """Set the copied columns that this batch's changes touch, in the service transaction.

    ``final`` is the batch's last event per key (monolith keys), ``targets`` the id map's
    service keys. A changed (or deleted) referenced row refreshes every copy of it; a
    written referencing row gets its copy from the service's referenced row (NULL when
    there is none).
    """
    for pair in mapping.tables:
        for field in copy_fields(pair):
            source_pair = mapping.table(field.copy_of.table)
            target = tables[pair.name]
            copied = _copied_value(mapping, tables, pair, field)
            changed = _service_key_values(conn, source_pair, final, targets, deletes=True)
            if changed:
                conn.execute(
                    update(target)
                    .where(target.c[field.copy_of.via].in_([values[0] for values in changed]))
                    .values({field.service: copied})
                )
            written = _service_key_values(conn, pair, final, targets, deletes=False)
            if written:
                conn.execute(
                    update(target)
                    .where(_key_in(target, list(pair.key.service_columns), written))
                    .values({field.service: copied})
                )


def _service_key_values(
    conn: Connection,
    pair: TableMapping,
    final: dict[Key, Any],
    targets: dict[Key, str],
    *,
    deletes: bool,
) -> list[tuple[Any, ...]]:
    """Service key values of ``pair``'s keys in ``final`` (upserts; deletes too if asked)."""
    found: list[tuple[Any, ...]] = []
    for key, event in final.items():
        if key[0] != pair.name or (event.operation == "delete" and not deletes):
            continue
        text_key = targets.get(key) if pair.key.id_map else key[1]
        if text_key is None:
            continue
        values = pair.key.values_of(text_key, "service")
        found.append(tuple(bindable(conn, value) for value in values))
    return found


def _key_in(table: Table, keys: list[str], values: list[tuple[Any, ...]]) -> Any:
    if len(keys) == 1:
        return table.c[keys[0]].in_([value[0] for value in values])
    return tuple_(*(table.c[k] for k in keys)).in_(values)


def refresh_all_copies(conn: Connection, mapping: ContextMapping, tables: dict[str, Table]) -> None:
    """Set every copied (``copy_of``) column of the context from the referenced rows."""
    for pair in mapping.tables:
        for field in copy_fields(pair):
            copied = _copied_value(mapping, tables, pair, field)
            conn.execute(update(tables[pair.name]).values({field.service: copied}))


def _copied_value(
    mapping: ContextMapping, tables: dict[str, Table], pair: TableMapping, field: CopyField
) -> Any:
    """The referenced row's source column, for an UPDATE of ``pair``'s copied ``field``."""
    source_pair = mapping.table(field.copy_of.table)
    source, target = tables[source_pair.name], tables[pair.name]
    return (
        select(source.c[field.copy_of.column])
        .where(source.c[source_pair.key.service] == target.c[field.copy_of.via])
        .scalar_subquery()
    )


def json_columns(pair: TableMapping, side: str) -> list[str]:
    """``pair``'s JSON (``transform: json``) columns on ``side``."""
    return [getattr(field, side) for field in pair.fields if isinstance(field, JsonField)]


def json_floats(value: Any) -> Any:
    """A JSON value read from an event with its numbers as floats again.

    Events are read with exact decimals (a numeric column's value must not pass through
    a float), which inside a JSON document would be written back as strings.
    """
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [json_floats(item) for item in value]
    if isinstance(value, dict):
        return {name: json_floats(item) for name, item in value.items()}
    return value
