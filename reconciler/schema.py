"""Check a table pair against the live databases and compile it to per-side render plans.

Everything that can be wrong with the input (a missing table or column, no primary
key, key types that cannot match) is found here, before any scan starts.

    pair = inspect_pair(mapping.table("products"), monolith_engine, service_engine)
    pair.monolith.ops   # how each monolith column renders to canonical text
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from migration_plans.core.idmap import ID_MAP_TABLE
from migration_plans.core.mapping import FieldMapping, TableMapping
from migration_plans.core.sqlnames import quote_ident, quote_literal
from reconciler.canonical import Category, Op, OpKind
from reconciler.connections import server_major
from reconciler.exceptions import (
    DatabaseError,
    KeyTypeMismatch,
    MissingColumn,
    MissingPrimaryKey,
    MissingTable,
    SchemaMismatch,
)

Role = Literal["monolith", "service"]
HashMode = Literal["hashtext", "md5"]
KeyKind = Literal["int", "text"]


ID_MAP_ALIAS = "strangler_idmap"
SOURCE_ALIAS = "strangler_src"
KEY_LABEL = "strangler_key"
UNMAPPED = "?unmapped:"
"""Prefix of a service key the id map has no monolith key for (reported as such)."""


@dataclass(frozen=True)
class SideSchema:
    """One side of a pair: its table, key, mapped columns and how each renders.

    ``columns`` are the names the side's values are fetched under (the mapped
    columns, then the copied columns); ``column_sql`` the SQL expression of each
    as hashed (a quoted column, or a transform's SQL, a NULL-for-empty wrapper, a
    correlated subquery for a copy) and ``fetch_sql`` as fetched for the diff (the
    stored value, which the mapping converts). ``key_sql`` is the expression of the key text
    (:meth:`KeyMapping.text_sql`, translated through the id map on an id-map pair's
    service side) and ``from_sql`` the FROM clause (the table, joined to the id map).
    """

    role: Role
    dialect: str
    table: str
    key: str
    columns: tuple[str, ...]
    ops: tuple[Op, ...]
    types: tuple[Any, ...] = ()
    key_columns: tuple[str, ...] = ()
    key_sql: str = ""
    from_sql: str = ""
    column_sql: tuple[str, ...] = ()
    fetch_sql: tuple[str, ...] = ()
    copies: tuple[tuple[str, Any], ...] = ()
    id_map_pair: str = ""
    own_key_sql: str = ""
    key_types: tuple[Any, ...] = ()

    @property
    def fetch_names(self) -> tuple[str, ...]:
        """Names of a fetched row's values: key text, value columns, then key columns."""
        extra = () if self.id_map_pair else self.key_columns
        return (KEY_LABEL, *self.columns, *extra)

    def from_clause(self) -> tuple[sa.FromClause, sa.TableClause]:
        """The FROM of a fetch (the table, joined to the id map on an id-map pair's
        service side), and the table in it, with its key columns typed as reflected."""
        types = self.key_types or (None,) * len(self.key_columns)
        table = sa.table(
            self.table, *(sa.column(n, t) for n, t in zip(self.key_columns, types, strict=True))
        )
        if not self.id_map_pair:
            return table, table
        id_map = sa.table(ID_MAP_TABLE).alias(ID_MAP_ALIAS)
        on = id_map_on(self.id_map_pair, self.own_key_sql, self.dialect)
        return table.outerjoin(id_map, sa.literal_column(on, sa.Boolean)), table


def id_map_on(pair: str, service_key_sql: str, dialect: str) -> str:
    """Join condition: the id map's row of ``pair`` for the service key text."""
    alias = quote_ident(ID_MAP_ALIAS)
    return (
        f"{alias}.{quote_ident('pair')} = {quote_literal(pair, dialect)} "
        f"AND {alias}.{quote_ident('service_key')} = {service_key_sql}"
    )


@dataclass(frozen=True)
class PairSchema:
    """A checked table pair, ready to be hashed on both sides."""

    mapping: TableMapping
    monolith: SideSchema
    service: SideSchema
    quoted: tuple[bool, ...]
    hash_mode: HashMode
    key_kind: KeyKind = "int"
    sources: tuple[TableMapping, ...] = ()
    """The pairs this pair's copied columns copy from."""
    rows_per_key: int = 1
    """Rows per value of the first key column (a power of two) when a composite key is
    segmented by its ranges; 1 otherwise."""
    bucket_part: int | None = None
    """A composite key on the key-hash path: the one key column (by position) whose hash
    alone buckets the key, when statistics say it is nearly unique; None chains all."""

    def side(self, role: Role) -> SideSchema:
        return self.monolith if role == "monolith" else self.service

    @property
    def reports_int(self) -> bool:
        """Whether keys are reported as integers (a single integer key); else key texts."""
        return self.key_kind == "int" and not self.mapping.key.is_composite

    @property
    def key_quoted(self) -> bool:
        """Whether the row text length-prefixes the key: a text key may hold any character.

        A composite key's text needs no prefix: its parts are escaped, so it holds
        exactly one unescaped ``|`` fewer than it has columns, and where it ends is
        never in doubt."""
        return self.key_kind == "text" and not self.mapping.key.is_composite


def category_of(column_type: Any) -> Category:
    """Map a reflected SQLAlchemy type to a rendering category."""
    checks: tuple[tuple[type[Any], Category], ...] = (
        (sa.Boolean, Category.BOOL),
        (sa.Integer, Category.INT),
        (sa.Float, Category.FLOAT),
        (sa.Numeric, Category.DECIMAL),
        (sa.DateTime, Category.TIMESTAMP),
        (sa.Date, Category.DATE),
        (sa.String, Category.TEXT),
    )
    for sa_type, category in checks:
        if isinstance(column_type, sa_type):
            return category
    return Category.OTHER


_IDENTITY_OPS = {
    Category.INT: OpKind.INT,
    Category.DECIMAL: OpKind.DECIMAL,
    Category.FLOAT: OpKind.FLOAT,
    Category.TEXT: OpKind.TEXT,
    Category.BOOL: OpKind.BOOL,
    Category.TIMESTAMP: OpKind.TIMESTAMP,
    Category.DATE: OpKind.DATE,
    Category.OTHER: OpKind.OTHER,
}


def op_for(field: Any, role: Role, column_type: Any) -> Op:
    """How ``role``'s column of ``field`` renders to the canonical (service-form) text."""
    category = category_of(column_type)
    timezone = bool(getattr(column_type, "timezone", False))
    transform = field.transform
    if transform == "decimal_cents":
        kind = OpKind.CENTS if role == "monolith" else OpKind.DECIMAL
        return Op(kind=kind, category=category, scale=field.scale if role == "monolith" else 0)
    if transform == "bool_enum":
        if role == "service":
            return Op(kind=OpKind.TEXT, category=category)
        return Op(
            kind=OpKind.ENUM,
            category=category,
            true_value=field.true_value,
            false_value=field.false_value,
        )
    if transform == "timestamp":
        return Op(
            kind=OpKind.TIMESTAMP, category=category, precision=field.precision, timezone=timezone
        )
    if transform == "enum_map":
        if role == "monolith":
            values = tuple(field.values.items())
            return Op(kind=OpKind.ENUM_MAP, category=category, values=values, unknown="?m:")
        own = tuple((value, value) for value in field.values.values())
        return Op(kind=OpKind.ENUM_MAP, category=category, values=own, unknown="?s:")
    if transform == "json":
        return Op(kind=OpKind.JSON, category=category)
    if transform == "custom" and role == "monolith":
        return Op(kind=OpKind.TEXT, category=Category.TEXT)
    return Op(kind=_IDENTITY_OPS[category], category=category, timezone=timezone)


def value_sql(field: Any, role: Role, qualifier: str, dialect: str) -> str:
    """SQL expression of ``role``'s value of ``field`` in a row of table alias ``qualifier``."""
    column = f"{quote_ident(qualifier)}.{quote_ident(getattr(field, role))}"
    if role != "monolith":
        return column
    if field.transform == "identity" and field.empty_string == "null":
        return f"NULLIF({column}, '')"
    if field.transform == "custom":
        computed = field.sql(dialect, column)
        # A value the transform cannot convert (NULL for a non-NULL input) stays visible.
        return f"coalesce(CAST(({computed}) AS TEXT), '?m:' || CAST({column} AS TEXT))"
    return column


def _reflect(engine: Engine, table: str, role: Role) -> tuple[dict[str, Any], list[str]]:
    try:
        inspector = sa.inspect(engine)
        columns = {column["name"]: column["type"] for column in inspector.get_columns(table)}
        primary_key = list(inspector.get_pk_constraint(table).get("constrained_columns") or [])
    except NoSuchTableError as exc:
        raise MissingTable(f"{role} table {table!r} does not exist") from exc
    except SQLAlchemyError as exc:
        url = engine.url.render_as_string(hide_password=True)
        raise DatabaseError(f"cannot inspect {role} table {table!r} in {url}: {exc}") from exc
    if not columns:
        raise MissingTable(f"{role} table {table!r} does not exist")
    return columns, primary_key


@dataclass(frozen=True)
class _Copy:
    """A copied column resolved against its source pair."""

    name: str
    field: FieldMapping
    source: TableMapping
    via_monolith: str


def _resolve_copies(
    mapping: TableMapping, sources: Mapping[str, TableMapping] | None
) -> list[_Copy]:
    resolved = []
    for copy in mapping.copies:
        source = (sources or {}).get(copy.copy_of.table)
        if source is None:
            raise SchemaMismatch(
                f"table pair {mapping.name!r}: {copy.service!r} copies pair "
                f"{copy.copy_of.table!r}, which was not given to the reconciler (pass the "
                "context's pairs as sources)"
            )
        field = next(f for f in source.fields if f.service == copy.copy_of.column)
        via = next(f for f in mapping.fields if f.service == copy.copy_of.via)
        resolved.append(_Copy(copy.service, field, source, via.monolith))
    return resolved


def _copy_sql(copy: _Copy, table: str, dialect: str, *, raw: bool = False) -> str:
    """Correlated subquery: the source row's monolith value through this row's via column
    (as hashed, or ``raw`` as stored, for the diff)."""
    source = copy.source
    if raw:
        value = f"{quote_ident(SOURCE_ALIAS)}.{quote_ident(copy.field.monolith)}"
    else:
        value = value_sql(copy.field, "monolith", SOURCE_ALIAS, dialect)
    alias = quote_ident(SOURCE_ALIAS)
    return (
        f"(SELECT {value} FROM {quote_ident(source.monolith_table)} AS {alias} "
        f"WHERE {alias}.{quote_ident(source.key.monolith)} = "
        f"{quote_ident(table)}.{quote_ident(copy.via_monolith)})"
    )


def _check_columns(
    mapping: TableMapping, role: Role, table: str, columns: Mapping[str, Any], wanted: Sequence[str]
) -> None:
    missing = [name for name in wanted if name not in columns]
    if missing:
        raise MissingColumn(
            f"table pair {mapping.name!r}: {role} table {table!r} has no column "
            f"{', '.join(repr(name) for name in missing)} (mapped in the plan)"
        )


def _side(
    mapping: TableMapping,
    role: Role,
    engine: Engine,
    copies: Sequence[_Copy] = (),
    source_types: Mapping[str, Any] | None = None,
) -> SideSchema:
    table = getattr(mapping, f"{role}_table")
    dialect = engine.dialect.name
    key_columns = mapping.key.columns(role)
    columns, primary_key = _reflect(engine, table, role)
    fields = [getattr(field, role) for field in mapping.fields]
    copied = [copy.name for copy in copies] if role == "service" else []
    _check_columns(mapping, role, table, columns, [*key_columns, *fields, *copied])
    if not primary_key:
        raise MissingPrimaryKey(f"{role} table {table!r} has no primary key")
    if primary_key != list(key_columns):
        shown = key_columns[0] if len(key_columns) == 1 else list(key_columns)
        raise MissingPrimaryKey(
            f"{role} table {table!r}: mapped key {shown!r} is not its primary key {primary_key}"
        )
    ops = [op_for(field, role, columns[getattr(field, role)]) for field in mapping.fields]
    column_sql = [value_sql(field, role, table, dialect) for field in mapping.fields]
    fetch_sql = [f"{quote_ident(table)}.{quote_ident(name)}" for name in fields]
    types = [columns[name] for name in fields]
    for copy in copies:
        if role == "monolith":
            source_type = (source_types or {}).get(copy.name)
            ops.append(op_for(copy.field, "monolith", source_type))
            column_sql.append(_copy_sql(copy, table, dialect))
            fetch_sql.append(_copy_sql(copy, table, dialect, raw=True))
            types.append(source_type)
        else:
            ops.append(op_for(copy.field, "service", columns[copy.name]))
            column_sql.append(f"{quote_ident(table)}.{quote_ident(copy.name)}")
            fetch_sql.append(column_sql[-1])
            types.append(columns[copy.name])
    key_category = category_of(columns[key_columns[0]])
    single_int = len(key_columns) == 1 and key_category is Category.INT
    key_op = Op(
        kind=OpKind.INT if single_int and not mapping.key.id_map else OpKind.TEXT,
        category=key_category if len(key_columns) == 1 else Category.TEXT,
    )
    own_key_sql = mapping.key.text_sql(table, dialect, role)
    id_map_pair = mapping.name if mapping.key.id_map and role == "service" else ""
    key_sql = own_key_sql
    from_sql = quote_ident(table)
    if id_map_pair:
        alias = quote_ident(ID_MAP_ALIAS)
        key_sql = (
            f"coalesce({alias}.{quote_ident('monolith_key')}, "
            f"{quote_literal(UNMAPPED, dialect)} || {own_key_sql})"
        )
        from_sql += (
            f" LEFT JOIN {quote_ident(ID_MAP_TABLE)} AS {alias} "
            f"ON {id_map_on(id_map_pair, own_key_sql, dialect)}"
        )
    return SideSchema(
        role=role,
        dialect=dialect,
        table=table,
        key=key_columns[0],
        columns=(*fields, *(copy.name for copy in copies)),
        ops=(key_op, *ops),
        types=(columns[key_columns[0]], *types),
        key_columns=key_columns,
        key_sql=key_sql,
        from_sql=from_sql,
        column_sql=tuple(column_sql),
        fetch_sql=tuple(fetch_sql),
        copies=tuple((copy.name, copy.field) for copy in copies),
        id_map_pair=id_map_pair,
        own_key_sql=own_key_sql,
        key_types=tuple(columns[name] for name in key_columns),
    )


def _source_types(copies: Sequence[_Copy], engine: Engine) -> dict[str, Any]:
    """The monolith type of each copied column's source column."""
    found: dict[str, Any] = {}
    for copy in copies:
        columns, _ = _reflect(engine, copy.source.monolith_table, "monolith")
        _check_columns(
            copy.source, "monolith", copy.source.monolith_table, columns, [copy.field.monolith]
        )
        found[copy.name] = columns[copy.field.monolith]
    return found


def choose_hash_mode(monolith: Engine, service: Engine) -> HashMode:
    """``hashtext`` when both are PostgreSQL of one major version, else portable ``md5``."""
    majors = {server_major(monolith), server_major(service)}
    if None in majors or len(majors) != 1:
        return "md5"
    return "hashtext"


def inspect_pair(
    mapping: TableMapping,
    monolith: Engine,
    service: Engine,
    hash_mode: HashMode | None = None,
    sources: Mapping[str, TableMapping] | None = None,
) -> PairSchema:
    """Check ``mapping`` against both databases; raise a :class:`SchemaMismatch` otherwise.

    ``sources`` are the context's pairs by name: a pair with copied columns
    (``copy_of``) needs the pairs it copies from.
    """
    copies = _resolve_copies(mapping, sources)
    left = _side(mapping, "monolith", monolith, copies, _source_types(copies, monolith))
    right = _side(mapping, "service", service, copies)
    key_kind = _key_kind(mapping, left.ops[0].category, right.ops[0].category)
    rows_per_key, bucket_part = 1, None
    if mapping.key.is_composite and not mapping.key.id_map:
        shares = _distinct_shares(monolith, left)
        key_kind, rows_per_key = _composite_kind(left, right, shares)
        bucket_part = _bucket_part(key_kind, shares)
    quoted = tuple(a.textual or b.textual for a, b in zip(left.ops[1:], right.ops[1:], strict=True))
    return PairSchema(
        mapping=mapping,
        monolith=left,
        service=right,
        quoted=quoted,
        hash_mode=hash_mode or choose_hash_mode(monolith, service),
        key_kind=key_kind,
        sources=tuple({copy.source.name: copy.source for copy in copies}.values()),
        rows_per_key=rows_per_key,
        bucket_part=bucket_part,
    )


_TEXTUAL_KEYS = {Category.TEXT, Category.OTHER}
RANGED_DISTINCT = 0.1
"""A composite key is segmented by ranges of its first column when PostgreSQL's
statistics say that column has at least this share of distinct values."""


BUCKET_PART_DISTINCT = 0.5
"""A composite key on the key-hash path is bucketed by the hash of one column alone
when PostgreSQL's statistics say that column has at least this share of distinct
values: one hash per row instead of a chain (the bucket scan and the second read of
the differing buckets both compute it on every row)."""


def _distinct_shares(monolith: Engine, side: SideSchema) -> list[float] | None:
    """Share of distinct values of each key column by the monolith's statistics, in key
    order; None without statistics (never analyzed, not PostgreSQL, unreadable)."""
    if monolith.dialect.name != "postgresql":
        return None
    try:
        with monolith.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT s.attname, s.n_distinct, c.reltuples FROM pg_stats s JOIN pg_class c "
                    "ON c.oid = to_regclass(:quoted) WHERE s.schemaname = current_schema() "
                    "AND s.tablename = :table AND s.attname = ANY(:columns)"
                ),
                {
                    "quoted": quote_ident(side.table),
                    "table": side.table,
                    "columns": list(side.key_columns),
                },
            ).all()
    except SQLAlchemyError:
        return None
    found = {str(name): _share(float(distinct), float(rows)) for name, distinct, rows in rows}
    if any(column not in found for column in side.key_columns):
        return None
    return [found[column] for column in side.key_columns]


def _share(distinct: float, rows: float) -> float:
    """pg_stats' n_distinct as a share of rows (negative values already are one)."""
    if distinct < 0:
        return min(-distinct, 1.0)
    return min(distinct / rows, 1.0) if rows > 0 else 0.0


def _composite_kind(
    left: SideSchema, right: SideSchema, shares: Sequence[float] | None
) -> tuple[KeyKind, int]:
    """``int`` (ranges of the first key column, through the primary key's index) when that
    column is an integer on both sides and nearly unique by the monolith's statistics;
    else ``text`` (buckets by key-text hash). Without statistics (``shares`` None: never
    analyzed, SQLite) the hash buckets, which need none. With the kind: rows per value
    of the first column, as a power of two."""
    first = (category_of(left.key_types[0]), category_of(right.key_types[0]))
    if first != (Category.INT, Category.INT) or shares is None or shares[0] < RANGED_DISTINCT:
        return "text", 1
    return "int", 2 ** max(0, round(math.log2(1 / shares[0])))


def _bucket_part(key_kind: KeyKind, shares: Sequence[float] | None) -> int | None:
    """The most distinct key column, when it alone can bucket a key-hash path key."""
    if key_kind != "text" or not shares:
        return None
    best = max(range(len(shares)), key=lambda index: shares[index])
    return best if shares[best] >= BUCKET_PART_DISTINCT else None


def _key_kind(mapping: TableMapping, left: Category, right: Category) -> KeyKind:
    """Integer keys on both sides, or text-like keys (varchar, uuid) on both sides.

    A composite key, or an id-map pair's (translated on the service side), is compared
    by its key text: ``text``.
    """
    if mapping.key.is_composite or mapping.key.id_map:
        return "text"
    name = mapping.name
    if left is Category.INT and right is Category.INT:
        return "int"
    if left in _TEXTUAL_KEYS and right in _TEXTUAL_KEYS:
        return "text"
    detail = f"monolith {left}, service {right}"
    if left != right:
        raise KeyTypeMismatch(f"table pair {name!r}: key types differ ({detail})")
    raise KeyTypeMismatch(f"table pair {name!r}: unsupported key type ({detail})")
