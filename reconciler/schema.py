"""Check a table pair against the live databases and compile it to per-side render plans.

Everything that can be wrong with the input (a missing table or column, no primary
key, key types that cannot match) is found here, before any scan starts.

    pair = inspect_pair(mapping.table("products"), monolith_engine, service_engine)
    pair.monolith.ops   # how each monolith column renders to canonical text
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from migration_plans.core.mapping import TableMapping
from reconciler.canonical import Category, Op, OpKind
from reconciler.connections import server_major
from reconciler.exceptions import (
    DatabaseError,
    KeyTypeMismatch,
    MissingColumn,
    MissingPrimaryKey,
    MissingTable,
)

Role = Literal["monolith", "service"]
HashMode = Literal["hashtext", "md5"]
KeyKind = Literal["int", "text"]


@dataclass(frozen=True)
class SideSchema:
    """One side of a pair: its table, key, mapped columns and how each renders."""

    role: Role
    dialect: str
    table: str
    key: str
    columns: tuple[str, ...]
    ops: tuple[Op, ...]
    types: tuple[Any, ...] = ()

    def selectable(self) -> sa.TableClause:
        """A lightweight table of the key and mapped columns, typed as reflected."""
        names = (self.key, *self.columns)
        types = self.types or (None,) * len(names)
        return sa.table(self.table, *(sa.column(n, t) for n, t in zip(names, types, strict=True)))


@dataclass(frozen=True)
class PairSchema:
    """A checked table pair, ready to be hashed on both sides."""

    mapping: TableMapping
    monolith: SideSchema
    service: SideSchema
    quoted: tuple[bool, ...]
    hash_mode: HashMode
    key_kind: KeyKind = "int"

    def side(self, role: Role) -> SideSchema:
        return self.monolith if role == "monolith" else self.service


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
    return Op(kind=_IDENTITY_OPS[category], category=category, timezone=timezone)


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


def _side(mapping: TableMapping, role: Role, engine: Engine) -> SideSchema:
    table = getattr(mapping, f"{role}_table")
    key = getattr(mapping.key, role)
    columns, primary_key = _reflect(engine, table, role)
    wanted = [key, *(getattr(field, role) for field in mapping.fields)]
    missing = [name for name in wanted if name not in columns]
    if missing:
        raise MissingColumn(
            f"table pair {mapping.name!r}: {role} table {table!r} has no column "
            f"{', '.join(repr(name) for name in missing)} (mapped in the plan)"
        )
    if not primary_key:
        raise MissingPrimaryKey(f"{role} table {table!r} has no primary key")
    if primary_key != [key]:
        raise MissingPrimaryKey(
            f"{role} table {table!r}: mapped key {key!r} is not its primary key {primary_key}"
        )
    ops = tuple(op_for(field, role, columns[getattr(field, role)]) for field in mapping.fields)
    key_category = category_of(columns[key])
    key_op = Op(
        kind=OpKind.INT if key_category is Category.INT else OpKind.TEXT, category=key_category
    )
    return SideSchema(
        role=role,
        dialect=engine.dialect.name,
        table=table,
        key=key,
        columns=tuple(getattr(field, role) for field in mapping.fields),
        ops=(key_op, *ops),
        types=tuple(columns[name] for name in wanted),
    )


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
) -> PairSchema:
    """Check ``mapping`` against both databases; raise a :class:`SchemaMismatch` otherwise."""
    left = _side(mapping, "monolith", monolith)
    right = _side(mapping, "service", service)
    key_kind = _key_kind(mapping.name, left.ops[0].category, right.ops[0].category)
    quoted = tuple(a.textual or b.textual for a, b in zip(left.ops[1:], right.ops[1:], strict=True))
    return PairSchema(
        mapping=mapping,
        monolith=left,
        service=right,
        quoted=quoted,
        hash_mode=hash_mode or choose_hash_mode(monolith, service),
        key_kind=key_kind,
    )


_TEXTUAL_KEYS = {Category.TEXT, Category.OTHER}


def _key_kind(name: str, left: Category, right: Category) -> KeyKind:
    """Integer keys on both sides, or text-like keys (varchar, uuid) on both sides."""
    if left is Category.INT and right is Category.INT:
        return "int"
    if left in _TEXTUAL_KEYS and right in _TEXTUAL_KEYS:
        return "text"
    detail = f"monolith {left}, service {right}"
    if left != right:
        raise KeyTypeMismatch(f"table pair {name!r}: key types differ ({detail})")
    raise KeyTypeMismatch(f"table pair {name!r}: unsupported key type ({detail})")
