"""Compile a side's canonical rendering and row hash to SQL, per dialect.

PostgreSQL renders each column with SQL expressions that match
:mod:`reconciler.canonical` exactly and hashes the row text with
``hashtextextended`` (fast, but its values may change between major versions) or
md5 folded to 64 bits (portable). SQLite gets the Python reference itself,
registered as SQL functions. Both aggregate per bucket with a 64-bit XOR, which is
order-independent; the key is part of every row text, so rows cannot cancel.

    sql = bucket_sql(pair, "monolith", size=1024, offset=0, ranges=[(0, 1_000_000)])
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from migration_plans.core.sqlnames import quote_ident as quote_ident
from migration_plans.core.sqlnames import quote_literal as quote_literal
from reconciler.canonical import Category, Op, OpKind, key_bucket, md5_hash64, row_text
from reconciler.schema import PairSchema, Role, SideSchema

Range = tuple[int, int]


def pg_value(op: Op, column_sql: str) -> str:
    """PostgreSQL expression rendering ``column_sql`` as canonical text (NULL stays NULL)."""
    c = column_sql
    kind, category = op.kind, op.category
    if kind is OpKind.ENUM_MAP:
        text = f"CAST({c} AS TEXT)"
        cases = " ".join(
            f"WHEN {quote_literal(stored)} THEN {quote_literal(mapped)}"
            for stored, mapped in op.values
        )
        return f"CASE {text} {cases} ELSE {quote_literal(op.unknown)} || {text} END"
    if kind is OpKind.JSON:
        return f"CAST(CAST({c} AS jsonb) AS TEXT)"
    if kind in (OpKind.DECIMAL, OpKind.CENTS):
        scaled = f"({c} * {10**op.scale})" if kind is OpKind.CENTS else c
        if category in (Category.INT, Category.BOOL):
            return f"{scaled}::text"
        return f"trim_scale({scaled}::numeric)::text"
    if kind in (OpKind.BOOL, OpKind.ENUM):
        truth = f"{c} <> 0" if category is Category.INT else c
        yes, no = (
            ("'true'", "'false'")
            if kind is OpKind.BOOL
            else (
                quote_literal(op.true_value),
                quote_literal(op.false_value),
            )
        )
        return f"CASE WHEN {c} IS NULL THEN NULL WHEN {truth} THEN {yes} ELSE {no} END"
    if kind is OpKind.TIMESTAMP:
        moment = f"({c} AT TIME ZONE 'UTC')" if op.timezone else c
        if category is Category.TEXT:
            moment = f"({c}::timestamptz AT TIME ZONE 'UTC')"
        if op.precision == "s":
            moment = f"date_trunc('second', {moment})"
        elif op.precision == "ms":
            moment = f"date_trunc('milliseconds', {moment})"
        return f"{moment}::timestamp::text"
    if kind is OpKind.TEXT and category is Category.TEXT:
        return c
    return f"{c}::text"


def _pg_part(op: Op, column_sql: str, quoted: bool) -> str:
    value = pg_value(op, column_sql)
    if quoted:
        return f"coalesce(length({value})::text || ':' || {value}, '~')"
    return f"coalesce({value}, '~')"


def pg_row_text(side: SideSchema, quoted: Sequence[bool], key_quoted: bool = False) -> str:
    """PostgreSQL expression of a row's canonical text."""
    key = f"({side.key_sql})"
    parts = [f"length({key})::text || ':' || {key}" if key_quoted else key]
    for op, column_sql, is_quoted in zip(side.ops[1:], side.column_sql, quoted, strict=True):
        parts.append(_pg_part(op, column_sql, is_quoted))
    return " || '|' || ".join(parts)


def pg_hash(text_sql: str, mode: str) -> str:
    if mode == "hashtext":
        return f"hashtextextended({text_sql}, 0)"
    return f"('x' || left(md5({text_sql}), 16))::bit(64)::bigint"


def sqlite_function_name(pair: PairSchema, role: Role) -> str:
    return "strangler_row_" + re.sub(r"\W", "_", f"{pair.mapping.name}_{role}")


class _Xor:
    """SQLite aggregate: 64-bit XOR of signed integers."""

    def __init__(self) -> None:
        self.value = 0

    def step(self, value: int | None) -> None:
        if value is not None:
            self.value ^= value

    def finalize(self) -> int:
        return self.value


def prepare(conn: Connection, pair: PairSchema, role: Role) -> None:
    """Register the SQLite functions the row hash needs on ``conn`` (no-op elsewhere)."""
    if conn.dialect.name != "sqlite":
        return
    side = pair.side(role)
    ops, quoted, key_quoted = side.ops[1:], pair.quoted, pair.key_quoted

    def row_hash(key: Any, *values: Any) -> int:
        return md5_hash64(row_text(key, ops, quoted, values, key_quoted=key_quoted))

    raw: Any = conn.connection.driver_connection
    raw.create_function(sqlite_function_name(pair, role), -1, row_hash, deterministic=True)
    raw.create_function("strangler_key_bucket", 2, key_bucket, deterministic=True)
    raw.create_aggregate("strangler_xor", 1, _Xor)


def row_hash_sql(pair: PairSchema, role: Role, dialect: str) -> str:
    """SQL expression of the 64-bit hash of a row of ``role``'s table."""
    side = pair.side(role)
    if dialect == "sqlite":
        columns = ", ".join((side.key_sql, *side.column_sql))
        return f"{sqlite_function_name(pair, role)}({columns})"
    return pg_hash(pg_row_text(side, pair.quoted, pair.key_quoted), pair.hash_mode)


def xor_agg(dialect: str) -> str:
    return "strangler_xor" if dialect == "sqlite" else "bit_xor"


def ranges_sql(key: str, ranges: Sequence[Range]) -> str:
    """``(k >= lo AND k < hi) OR ...`` for integer ranges."""
    k = quote_ident(key)
    return " OR ".join(f"({k} >= {int(lo)} AND {k} < {int(hi)})" for lo, hi in ranges)


def bucket_expr(key: str, size: int, offset: int) -> str:
    k = quote_ident(key)
    return f"{k} / {int(size)}" if offset == 0 else f"({k} - {int(offset)}) / {int(size)}"


def bucket_sql(
    pair: PairSchema, role: Role, dialect: str, size: int, offset: int, ranges: Sequence[Range]
) -> str:
    """One scan: count and XOR of row hashes per bucket of ``size`` keys within ``ranges``."""
    side = pair.side(role)
    return (
        f"SELECT {bucket_expr(side.key, size, offset)} AS b, count(*) AS n, "
        f"{xor_agg(dialect)}({row_hash_sql(pair, role, dialect)}) AS h "
        f"FROM {side.from_sql} WHERE {ranges_sql(side.key, ranges)} GROUP BY 1"
    )


def key_bucket_expr(
    key_sql: str, dialect: str, buckets: int, mode: str = "md5", parts: Sequence[str] = ()
) -> str:
    """Bucket of a key text, identical on both sides of a pair.

    ``key_sql`` is the SQL expression of the key text (:meth:`KeyMapping.text_sql`).
    In ``md5`` mode (any dialect, see :func:`canonical.key_bucket`) 60 bits of md5; in
    ``hashtext`` mode (both sides PostgreSQL of one major version) the far cheaper
    ``hashtextextended``, its sign bit cleared. Given the key's ``parts``
    (:meth:`KeyMapping.part_sqls`, both sides split the same way), ``hashtext`` mode
    chains them instead (each part's hash seeds the next): the same bucket for the same
    key, without escaping and joining the key text on every row (a fifth of a composite
    key's bucket scan). Given one part, it hashes that part alone.
    """
    if dialect == "sqlite":
        return f"strangler_key_bucket({key_sql}, {int(buckets)})"
    if mode == "hashtext":
        hashed = f"hashtextextended({key_sql}, 0)"
        if parts:
            hashed = "0"
            for part in parts:
                hashed = f"hashtextextended({part}, {hashed})"
        return f"mod({hashed} & 9223372036854775807, {int(buckets)})"
    return f"mod(('x' || left(md5({key_sql}), 15))::bit(60)::bigint, {int(buckets)})"


def key_parts(pair: PairSchema, role: Role, qualifier: str | None) -> list[str]:
    """The key's part expressions the bucket chains, or [] (one part, or an id-mapped
    pair, whose service side knows only the monolith key's whole text). Only the
    pair's ``bucket_part`` when it has one (a nearly unique column buckets alone)."""
    key = pair.mapping.key
    if key.id_map or len(key.columns(role)) < 2:
        return []
    parts = key.part_sqls(qualifier, "postgresql", role)
    return parts if pair.bucket_part is None else [parts[pair.bucket_part]]


def key_bucket_sql(pair: PairSchema, role: Role, dialect: str, buckets: int) -> str:
    """One scan for text keys: count and XOR of row hashes per key-hash bucket."""
    side = pair.side(role)
    parts = key_parts(pair, role, side.table)
    bucket = key_bucket_expr(side.key_sql, dialect, buckets, pair.hash_mode, parts)
    return (
        f"SELECT {bucket} AS b, count(*) AS n, "
        f"{xor_agg(dialect)}({row_hash_sql(pair, role, dialect)}) AS h "
        f"FROM {side.from_sql} GROUP BY 1"
    )


def row_hashes_sql(
    pair: PairSchema, role: Role, dialect: str, buckets: int, chosen: Sequence[int]
) -> str:
    """Key text and row hash of every row in the chosen key-hash buckets (text keys)."""
    side = pair.side(role)
    listed = ", ".join(str(int(b)) for b in chosen)
    parts = key_parts(pair, role, side.table)
    bucket = key_bucket_expr(side.key_sql, dialect, buckets, pair.hash_mode, parts)
    return (
        f"SELECT {side.key_sql} AS k, {row_hash_sql(pair, role, dialect)} AS h "
        f"FROM {side.from_sql} WHERE {bucket} IN ({listed})"
    )


def total_sql(pair: PairSchema, role: Role, dialect: str) -> str:
    """One scan, no grouping: count and XOR of every row (the single-scan limit)."""
    side = pair.side(role)
    return (
        f"SELECT count(*) AS n, {xor_agg(dialect)}({row_hash_sql(pair, role, dialect)}) AS h "
        f"FROM {side.from_sql}"
    )


def statistics_sql(side: SideSchema, size: int) -> tuple[str, str]:
    """(name, CREATE STATISTICS statement) that lets PostgreSQL plan a parallel hash aggregate."""
    name = f"strangler_{side.table}_{side.key}_{size}"[:63]
    statement = (
        f"CREATE STATISTICS IF NOT EXISTS {quote_ident(name)} "
        f"ON (({quote_ident(side.key)} / {int(size)})) FROM {quote_ident(side.table)}"
    )
    return name, statement


def key_hash_statistics_sql(pair: PairSchema, role: Role, buckets: int) -> tuple[str, str] | None:
    """(name, CREATE STATISTICS statement) on a text-path key's bucket expression.

    Without it PostgreSQL estimates a group per distinct key and aggregates serially.
    None on an id-map pair's service side (its key comes from a join).
    """
    side = pair.side(role)
    if side.id_map_pair:
        return None
    key_sql = pair.mapping.key.text_sql(None, "postgresql", role)
    parts = key_parts(pair, role, None)
    expression = key_bucket_expr(key_sql, "postgresql", buckets, pair.hash_mode, parts)
    # Named for the expression's form: statistics on an earlier form do not serve this one.
    form: str = pair.hash_mode
    if parts and pair.hash_mode == "hashtext":
        form = "hashparts" if pair.bucket_part is None else f"hashpart{pair.bucket_part}"
    name = f"strangler_{side.table}_keyhash_{form}_{int(buckets)}"[:63]
    statement = (
        f"CREATE STATISTICS IF NOT EXISTS {quote_ident(name)} "
        f"ON (({expression})) FROM {quote_ident(side.table)}"
    )
    return name, statement
