"""The id map: which service key a monolith row has, for pairs whose service makes its own ids.

A pair declared with ``key: {..., id_map: true}`` does not share its key: the service
generates its own (a UUID, say) and the monolith keeps its integer id. The toolkit
keeps the correspondence in ``strangler_id_map`` in the SERVICE database, one row per
mapped row, both keys in key-text form (``pair.key.text_of(values)``):

- ``(pair, monolith_key)`` is the primary key and ``(pair, service_key)`` is unique:
  one row each way, never two service rows for one monolith row;
- the dual-write relay writes it in the same service transaction as the row it maps
  (monolith -> service), or BEFORE it inserts into the monolith (service -> monolith:
  a crash between the two leaves the map row, and the retry reuses its key instead of
  reserving another), and removes it after a delete;
- the backfill fills it; the reconciler reads it to pair rows up.

    keys = service_keys(conn, "patients", ["1", "2"])      # {"1": "9b7e...", ...}
    record(conn, "patients", [("3", str(uuid4()))])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    insert,
    select,
)

__all__ = [
    "ID_MAP_TABLE",
    "IdMapConflict",
    "forget_monolith_keys",
    "forget_service_keys",
    "id_map_metadata",
    "id_map_table",
    "monolith_keys",
    "record",
    "service_keys",
]

ID_MAP_TABLE = "strangler_id_map"
LOOKUP_CHUNK = 1000
"""Keys per lookup statement (SQLite binds at most 32,766 values; one round trip each)."""

id_map_metadata = MetaData()

id_map_table = Table(
    ID_MAP_TABLE,
    id_map_metadata,
    Column("pair", String(64), primary_key=True),
    Column("monolith_key", Text, primary_key=True),
    Column("service_key", Text, nullable=False),
    UniqueConstraint("pair", "service_key", name="uq_strangler_id_map_service_key"),
)
"""One row per mapped row of an id-map pair (service database)."""


class IdMapConflict(ValueError):
    """A key is already mapped to another key (names the pair and both keys)."""


def _chunks(values: Sequence[str]) -> Iterable[list[str]]:
    for start in range(0, len(values), LOOKUP_CHUNK):
        yield list(values[start : start + LOOKUP_CHUNK])


def service_keys(conn: Connection, pair: str, monolith: Iterable[str]) -> dict[str, str]:
    """The service key of each of ``monolith`` (key texts) that has one."""
    wanted = sorted(set(monolith))
    found: dict[str, str] = {}
    for chunk in _chunks(wanted):
        rows = conn.execute(
            select(id_map_table.c.monolith_key, id_map_table.c.service_key).where(
                id_map_table.c.pair == pair, id_map_table.c.monolith_key.in_(chunk)
            )
        )
        found.update({row[0]: row[1] for row in rows})
    return found


def monolith_keys(conn: Connection, pair: str, service: Iterable[str]) -> dict[str, str]:
    """The monolith key of each of ``service`` (key texts) that has one."""
    wanted = sorted(set(service))
    found: dict[str, str] = {}
    for chunk in _chunks(wanted):
        rows = conn.execute(
            select(id_map_table.c.service_key, id_map_table.c.monolith_key).where(
                id_map_table.c.pair == pair, id_map_table.c.service_key.in_(chunk)
            )
        )
        found.update({row[0]: row[1] for row in rows})
    return found


def record(conn: Connection, pair: str, entries: Iterable[tuple[str, str]]) -> None:
    """Map each ``(monolith_key, service_key)`` of ``entries`` in ``conn``'s transaction.

    An entry already recorded is left alone; a key already mapped to ANOTHER key is
    :class:`IdMapConflict` (nothing written), never a silent second mapping.
    """
    wanted = dict(entries)
    if not wanted:
        return
    by_monolith = service_keys(conn, pair, wanted)
    by_service = monolith_keys(conn, pair, wanted.values())
    for monolith_key, service_key in sorted(wanted.items()):
        known = by_monolith.get(monolith_key)
        if known is not None and known != service_key:
            raise IdMapConflict(
                f"id map of {pair!r}: monolith key {monolith_key!r} is mapped to service key "
                f"{known!r}, not {service_key!r}"
            )
        owner = by_service.get(service_key)
        if owner is not None and owner != monolith_key:
            raise IdMapConflict(
                f"id map of {pair!r}: service key {service_key!r} is mapped to monolith key "
                f"{owner!r}, not {monolith_key!r}"
            )
    rows = [
        {"pair": pair, "monolith_key": monolith_key, "service_key": service_key}
        for monolith_key, service_key in sorted(wanted.items())
        if monolith_key not in by_monolith
    ]
    if rows:
        conn.execute(insert(id_map_table), rows)


def forget_monolith_keys(conn: Connection, pair: str, monolith: Iterable[str]) -> None:
    """Remove the map rows of ``monolith`` (key texts): their rows were deleted."""
    for chunk in _chunks(sorted(set(monolith))):
        conn.execute(
            delete(id_map_table).where(
                id_map_table.c.pair == pair, id_map_table.c.monolith_key.in_(chunk)
            )
        )


def forget_service_keys(conn: Connection, pair: str, service: Iterable[str]) -> None:
    """Remove the map rows of ``service`` (key texts): their rows were deleted."""
    for chunk in _chunks(sorted(set(service))):
        conn.execute(
            delete(id_map_table).where(
                id_map_table.c.pair == pair, id_map_table.c.service_key.in_(chunk)
            )
        )
