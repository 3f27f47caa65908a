"""The per-model files of a generated service: models, db, crud, schemas, api, migration.

Each function returns one module's source from a :class:`~.spec.ContextSpec`; column
names and transforms come from :func:`.plan_writer.column_of`, so the code and the plan
always agree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from migration_plans.control.init.plan_writer import Column, column_of, pair_name
from migration_plans.control.init.spec import (
    ContextSpec,
    FieldSpec,
    Kind,
    ModelSpec,
)
from migration_plans.core.mapping import TransformKind


def snake(name: str) -> str:
    """``StockItem`` -> ``stock_item``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def words(name: str) -> str:
    """Django's default verbose name: ``StockItem`` -> ``stock item``."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()


@dataclass(frozen=True)
class ColumnType:
    """How one kind is declared: SQLAlchemy type (service and monolith) and Python type."""

    service: str
    monolith: str
    python: str


def column_type(field: FieldSpec, column: Column | None = None) -> ColumnType:
    """The service and monolith SQLAlchemy types of ``field`` (``column``: its mapping)."""
    kind = field.kind
    if kind is Kind.STRING:
        text = f"String({field.max_length})" if field.max_length else "Text"
        return ColumnType(text, text, "str")
    if kind is Kind.DECIMAL:
        numeric = f"Numeric({field.max_digits}, {field.decimal_places})"
        if column is not None and column.transform == TransformKind.DECIMAL_CENTS.value:
            return ColumnType("Id", numeric, "int")
        return ColumnType(numeric, numeric, "Decimal")
    table = {
        Kind.INTEGER: ("Integer", "Integer", "int"),
        Kind.BIG_INTEGER: ("Id", "BigInteger", "int"),
        Kind.TEXT: ("Text", "Text", "str"),
        Kind.BOOLEAN: ("Boolean", "Boolean", "bool"),
        Kind.DATETIME: ("DateTime(timezone=True)", "DateTime(timezone=True)", "datetime"),
        Kind.DATE: ("Date", "Date", "date"),
        Kind.TIME: ("Time", "Time", "time"),
        Kind.FLOAT: ("Float", "Float", "float"),
        Kind.UUID: ("Uuid", "Uuid", "uuid.UUID"),
        Kind.JSON: ("JSON", "JSON", "Any"),
    }
    service, monolith, python = table[kind]
    return ColumnType(service, monolith, python)


def _type_names(expressions: Iterable[str]) -> list[str]:
    """The SQLAlchemy names used in type expressions (``DateTime(timezone=True)`` -> DateTime)."""
    return sorted({expression.split("(")[0] for expression in expressions})


def ordered_models(spec: ContextSpec) -> list[ModelSpec]:
    """Models with every in-context foreign key's target before it (creation order)."""
    tables = {model.db_table for model in spec.models}
    done: list[ModelSpec] = []
    waiting = list(spec.models)
    while waiting:
        for model in waiting:
            needs = {
                field.target.db_table
                for field in model.fields
                if field.target and field.target.db_table in tables
            } - {model.db_table}
            if needs <= {done_model.db_table for done_model in done}:
                done.append(model)
                waiting.remove(model)
                break
        else:  # a cycle: keep the declared order, the constraints come with the tables
            done += waiting
            break
    return done


def _in_context(spec: ContextSpec, field: FieldSpec) -> ModelSpec | None:
    if field.target is None:
        return None
    for model in spec.models:
        if model.db_table == field.target.db_table:
            return model
    return None


def py_literal(value: object) -> str:
    """``value`` as Python source the way ruff formats it (double-quoted strings)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple):
        items = ", ".join(py_literal(item) for item in value)
        return f"({items},)" if len(value) == 1 else f"({items})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{py_literal(k)}: {py_literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def py_def(head: str, params: list[str], returns: str, indent: str = "") -> list[str]:
    """A ``def`` line as ruff formats it: one line, else the parameters on one indented
    line, else one per line."""
    line = f"{indent}def {head}({', '.join(params)}) -> {returns}:"
    if len(line) <= 100:
        return [line]
    inner = f"{indent}    {', '.join(params)}"
    if len(inner) <= 100:
        return [f"{indent}def {head}(", inner, f"{indent}) -> {returns}:"]
    return [
        f"{indent}def {head}(",
        *(f"{indent}    {p}," for p in params),
        f"{indent}) -> {returns}:",
    ]


_literal = py_literal


def _assignment(target: str, call: str, args: list[str]) -> list[str]:
    """``target = call(args)`` wrapped as ruff wraps it past 100 characters."""
    line = f"{target} = {call}({', '.join(args)})"
    if len(line) <= 100:
        return [line]
    inner = f"        {', '.join(args)}"
    if len(inner) <= 100:
        return [f"{target} = {call}(", inner, "    )"]
    return [f"{target} = {call}(", *(f"        {arg}," for arg in args), "    )"]


# models.py ---------------------------------------------------------------------------


def _service_default(field: FieldSpec, column: Column) -> str | None:
    """The model's literal default as the service column's, when it carries over: an
    unchanged value (identity, enum_map's same names) of a column that is not NULL by
    default, or an enum_map's service name for it; a transformed value (cents) is left
    to the code."""
    if not field.has_default or field.default is None:
        return None
    if column.transform == "enum_map":
        names = dict(column.options).get("values")
        if isinstance(names, dict):
            return _literal(names.get(str(field.default), field.default))
    if column.transform not in (TransformKind.IDENTITY.value, "enum_map"):
        return None
    return _literal(field.default)


def models_py(spec: ContextSpec) -> str:
    types: set[str] = set()
    body: list[str] = []
    python_imports: set[str] = set()
    needs_utcnow = needs_fk = needs_unique = False
    for model in ordered_models(spec):
        table = pair_name(model.name)
        key_type = column_type(model.key)
        lines = [
            "",
            "",
            f"class {model.name}(Base):",
            f'    """{model.label}\'s rows (the monolith\'s ``{model.db_table}``)."""',
            "",
            f'    __tablename__ = "{table}"',
        ]
        if model.unique_together:
            needs_unique = True
            groups = ", ".join(
                "UniqueConstraint(" + ", ".join(f'"{column}"' for column in group) + ")"
                for group in model.unique_together
            )
            lines.append(f"    __table_args__ = ({groups},)")
        lines.append("")
        auto = ", autoincrement=True" if model.key.auto_increment else ""
        types.add(key_type.service.split("(")[0])
        lines.append(
            f"    {model.key.column}: Mapped[{key_type.python}] = "
            f"mapped_column({key_type.service}, primary_key=True{auto})"
        )
        for field in model.fields:
            column = column_of(field)
            kind = column_type(field, column)
            types.add(kind.service.split("(")[0])
            python = kind.python + (" | None" if field.null else "")
            if kind.python in {"datetime", "date", "time", "Decimal"}:
                python_imports.add(kind.python)
            if kind.python == "uuid.UUID":
                python_imports.add("uuid")
            args = [kind.service]
            target = _in_context(spec, field)
            if target is not None:
                needs_fk = True
                args.append(
                    f'ForeignKey("{pair_name(target.name)}.{target.key.column}", '
                    'ondelete="RESTRICT")'
                )
            if field.unique:
                args.append("unique=True")
            elif field.target is not None:
                args.append("index=True")
            if field.auto_now or field.auto_now_add:
                needs_utcnow = True
                args.append("default=utcnow")
            elif (default := _service_default(field, column)) is not None:
                args.append(f"default={default}")
            lines += _assignment(f"    {column.service}: Mapped[{python}]", "mapped_column", args)
        body += lines
    sqlalchemy = sorted(
        {name for name in types if name != "Id"}
        | ({"ForeignKey"} if needs_fk else set())
        | ({"UniqueConstraint"} if needs_unique else set())
    )
    head = [
        f'"""The {spec.context} service\'s tables, one per monolith model, same column names',
        "(a decimal proposed as integer minor units is ``<name>_cents``; see the plan).",
        '"""',
        "",
        "from __future__ import annotations",
        "",
    ]
    stdlib = []
    if "uuid" in python_imports:
        stdlib.append("import uuid")
    dated = sorted(name for name in python_imports if name in {"date", "datetime", "time"})
    if dated:
        stdlib.append(f"from datetime import {', '.join(dated)}")
    if "Decimal" in python_imports:
        stdlib.append("from decimal import Decimal")
    if any("Mapped[Any" in line for line in body):
        stdlib.append("from typing import Any")
    if stdlib:
        head += [*stdlib, ""]
    common = (
        ["Id", "service_metadata"] if any("Id" in line for line in body) else ["service_metadata"]
    )
    if needs_utcnow:
        common.append("utcnow")
    head += [
        f"from sqlalchemy import {', '.join(sqlalchemy)}",
        "from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column",
        "",
        f"from extracted_services.common.models import {', '.join(sorted(common))}",
        "",
        "",
        "class Base(DeclarativeBase):",
        "    metadata = service_metadata()",
    ]
    return "\n".join([*head, *body]) + "\n"


# db.py -------------------------------------------------------------------------------


def db_py(spec: ContextSpec) -> str:
    types: set[str] = set()
    tables: list[str] = []
    for model in spec.models:
        rows = [
            f'    Column("{model.key.column}", {column_type(model.key).monolith}, primary_key=True),'
        ]
        types.add(column_type(model.key).monolith.split("(")[0])
        for field in model.fields:
            kind = column_type(field)
            types.add(kind.monolith.split("(")[0])
            rows.append(f'    Column("{field.column}", {kind.monolith}, nullable={field.null}),')
        tables += [
            "",
            f"{model.db_table} = Table(",
            f'    "{model.db_table}",',
            "    legacy_metadata,",
            *rows,
            ")",
            "",
        ]
    pairs = [pair_name(model.name) for model in spec.models]
    monolith_views = [
        f'            "{pair}": TableView.monolith(crud.{pair}_pair(), {model.db_table}),'
        for pair, model in zip(pairs, spec.models, strict=True)
    ]
    service_views = [
        f'        "{pair}": TableView.service(crud.{pair}_pair(), '
        f"{model.name}.__table__),  # type: ignore[arg-type]"
        for pair, model in zip(pairs, spec.models, strict=True)
    ]
    names = ", ".join(sorted({"Column", "MetaData", "Table", *types}))
    classes = ", ".join(sorted(model.name for model in spec.models))
    return (
        "\n".join(
            [
                f'"""Where the {spec.context} service reads from in each phase: its own tables or the',
                "monolith's, declared here read-only as the anti-corruption layer sees them (column",
                f'names are the contract in the plan, plans/{spec.context}.yaml)."""',
                "",
                "from __future__ import annotations",
                "",
                f"from sqlalchemy import {names}",
                "",
                "from extracted_services.common.store import TableView",
                "from migration_plans.core.phase import Phase",
                "from {module} import crud",
                f"from {{module}}.models import {classes}",
                "",
                "legacy_metadata = MetaData()",
                *tables,
                "",
                "def views(phase: Phase) -> dict[str, TableView]:",
                '    """Each table pair as the phase reads it."""',
                "    if phase is Phase.SHARED:",
                "        return {",
                *monolith_views,
                "        }",
                "    return {",
                *service_views,
                "    }",
            ]
        )
        + "\n"
    )


# crud.py -----------------------------------------------------------------------------


def crud_py(spec: ContextSpec) -> str:
    parts: list[str] = []
    for model in spec.models:
        pair = pair_name(model.name)
        var = snake(model.name)
        stamped_on_create = [
            column_of(field).service
            for field in model.fields
            if field.auto_now or field.auto_now_add
        ]
        stamped_on_update = [column_of(field).service for field in model.fields if field.auto_now]
        create_values = "values"
        prelude: list[str] = []
        if stamped_on_create:
            prelude = ["    now = utcnow()"]
            stamps = ", ".join(f'"{column}": now' for column in stamped_on_create)
            create_values = "{" + stamps + ", **values}"
        update_values = "values.items()"
        if stamped_on_update:
            stamps = ", ".join(f'"{column}": utcnow()' for column in stamped_on_update)
            update_values = "{" + stamps + ", **values}.items()"
        parts += [
            "",
            "",
            f"def {pair}_pair() -> TableMapping:",
            f'    return {spec.context}_mapping().table("{pair}")',
            "",
            "",
            f"def create_{var}(",
            "    session: Session, values: Mapping[str, Any], *, changes: ChangeRecorder",
            f") -> {model.name}:",
            f'    """Insert a {words(model.name)} (``values`` in service columns; may carry the key)."""',
            *prelude,
            f"    {var} = {model.name}(**{create_values})",
            f"    save(session, {var}, table={pair}_pair(), operation=Operation.INSERT, changes=changes)",
            f"    return {var}",
            "",
            "",
            f"def update_{var}(",
            "    session: Session,",
            f"    {var}: {model.name},",
            "    values: Mapping[str, Any],",
            "    *,",
            "    changes: ChangeRecorder,",
            f") -> {model.name}:",
            f'    """Change some columns of a {words(model.name)}."""',
            f"    for column, value in {update_values}:",
            f"        setattr({var}, column, value)",
            f"    save(session, {var}, table={pair}_pair(), operation=Operation.UPDATE, changes=changes)",
            f"    return {var}",
            "",
            "",
            f"def delete_{var}(session: Session, {var}: {model.name}, *, changes: ChangeRecorder) -> None:",
            f"    remove(session, {var}, table={pair}_pair(), changes=changes)",
        ]
    stamped = any(
        field.auto_now or field.auto_now_add for model in spec.models for field in model.fields
    )
    classes = ", ".join(sorted(model.name for model in spec.models))
    head = [
        f'"""The {spec.context} write path: every change to a mapped table is reported to a',
        "ChangeSink in the same transaction (the relay applying the monolith's changes passes",
        "``NO_CHANGES``). Functions take a Session (the caller owns the transaction) and",
        'service-form values."""',
        "",
        "from __future__ import annotations",
        "",
        "from collections.abc import Mapping",
        "from functools import cache",
        "from typing import Any",
        "",
        "from sqlalchemy.orm import Session",
        "",
        "from extracted_services.common.changes import ChangeRecorder",
        "from extracted_services.common.crud import remove, save",
        *(["from extracted_services.common.models import utcnow"] if stamped else []),
        "from migration_plans.core.mapping import ContextMapping, TableMapping",
        "from migration_plans.core.outbox import Operation",
        "from migration_plans.core.settings import mapping_for",
        f"from {{module}}.models import {classes}",
        "",
        f'CONTEXT = "{spec.context}"',
        "",
        "",
        "@cache",
        f"def {spec.context}_mapping() -> ContextMapping:",
        '    """The field mapping of the plan (the deployment\'s plans folder)."""',
        "    return mapping_for(CONTEXT)",
    ]
    return "\n".join([*head, *parts]) + "\n"


# migration ---------------------------------------------------------------------------


def wrap_call(indent: str, callee: str, args: list[str], suffix: str = "") -> list[str]:
    """``callee(args)`` at ``indent`` as ruff wraps it past 100 characters."""
    line = f"{indent}{callee}({', '.join(args)}){suffix}"
    if len(line) <= 100:
        return [line]
    inner = f"{indent}    {', '.join(args)}"
    if len(inner) <= 100:
        return [f"{indent}{callee}(", inner, f"{indent}){suffix}"]
    return [f"{indent}{callee}(", *(f"{indent}    {arg}," for arg in args), f"{indent}){suffix}"]


def migration_py(spec: ContextSpec, date: str) -> str:
    creates: list[str] = []
    drops: list[str] = []
    inside = "        "
    for model in ordered_models(spec):
        table = pair_name(model.name)
        key_type = column_type(model.key).service
        key_args = [f'"{model.key.column}"', _sa(key_type), "primary_key=True"]
        if model.key.auto_increment:
            key_args.append("autoincrement=True")
        rows = wrap_call(inside, "sa.Column", key_args, ",")
        constraints = wrap_call(
            inside, "sa.PrimaryKeyConstraint", [f'"{model.key.column}"', f'name="pk_{table}"'], ","
        )
        indexes: list[str] = []
        for field in model.fields:
            column = column_of(field)
            kind = column_type(field, column).service
            rows += wrap_call(
                inside,
                "sa.Column",
                [f'"{column.service}"', _sa(kind), f"nullable={field.null}"],
                ",",
            )
            if field.unique:
                constraints += wrap_call(
                    inside,
                    "sa.UniqueConstraint",
                    [f'"{column.service}"', f'name="uq_{table}_{column.service}"'],
                    ",",
                )
            elif field.target is not None:
                indexes += wrap_call(
                    "    ",
                    "op.create_index",
                    [f'"ix_{table}_{column.service}"', f'"{table}"', f'["{column.service}"]'],
                )
            target = _in_context(spec, field)
            if target is not None:
                target_table = pair_name(target.name)
                constraints += wrap_call(
                    inside,
                    "sa.ForeignKeyConstraint",
                    [
                        f'["{column.service}"]',
                        f'["{target_table}.{target.key.column}"]',
                        f'name="fk_{table}_{column.service}_{target_table}"',
                        'ondelete="RESTRICT"',
                    ],
                    ",",
                )
        for group in model.unique_together:
            constraints += wrap_call(
                inside,
                "sa.UniqueConstraint",
                [*(f'"{name}"' for name in group), f'name="uq_{table}_{group[0]}"'],
                ",",
            )
        creates += ["    op.create_table(", f'        "{table}",', *rows, *constraints, "    )"]
        creates += indexes
        dropped_indexes: list[str] = []
        for field in model.fields:
            if field.target is not None and not field.unique:
                service = column_of(field).service
                dropped_indexes += wrap_call(
                    "    ", "op.drop_index", [f'"ix_{table}_{service}"', f'table_name="{table}"']
                )
        drops = [*dropped_indexes, f'    op.drop_table("{table}")', *drops]
    tables = ", ".join(pair_name(model.name) for model in spec.models)
    return (
        "\n".join(
            [
                f'"""{spec.context} tables ({tables}) and the service-side outbox, generated by',
                "`strangler init` from the Django models.",
                "",
                "Revision ID: 0001",
                "Revises:",
                f"Create Date: {date}",
                '"""',
                "",
                "from collections.abc import Sequence",
                "",
                "import sqlalchemy as sa",
                "from alembic import op",
                "",
                "from extracted_services.common.migrations import create_outbox_v1",
                "",
                'revision: str = "0001"',
                "down_revision: str | None = None",
                "branch_labels: str | Sequence[str] | None = None",
                "depends_on: str | Sequence[str] | None = None",
                "",
                'Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")',
                "",
                "",
                "def upgrade() -> None:",
                *creates,
                "    create_outbox_v1(op)",
                "",
                "",
                "def downgrade() -> None:",
                '    op.drop_table("strangler_outbox")',
                *drops,
            ]
        )
        + "\n"
    )


def _sa(expression: str) -> str:
    """A models.py type expression in the migration's ``sa.`` spelling."""
    if expression == "Id":
        return "Id"
    name, _, rest = expression.partition("(")
    return f"sa.{name}({rest}" if rest else f"sa.{name}()"


# schemas.py --------------------------------------------------------------------------


def _input_annotation(field: FieldSpec, model: ModelSpec) -> tuple[str, set[str]]:
    """The pydantic annotation parsing ``field`` as DRF's ModelSerializer field does."""
    helpers: set[str] = set()
    if field.target is not None:
        return "PrimaryKey", {"PrimaryKey"}
    if field.choices:
        constant = f"{snake(model.name).upper()}_{field.column.upper()}_CHOICES"
        return f"Annotated[str, choice({constant})]", {"choice"}
    kind = field.kind
    if kind in (Kind.STRING, Kind.TEXT):
        limits = [] if field.blank else ["min_length=1"]
        if field.max_length and kind is Kind.STRING:
            limits.append(f"max_length={field.max_length}")
        parse = "as_slug" if field.slug else "as_text"
        helpers.add(parse)
        after = ""
        if field.slug:
            helpers.add("slug_format")
            after = ", slug_format"
        if limits:
            return f"Annotated[str, {parse}, Field({', '.join(limits)}){after}]", helpers
        return f"Annotated[str, {parse}{after}]", helpers
    if kind in (Kind.INTEGER, Kind.BIG_INTEGER):
        return "Integer", {"Integer"}
    if kind is Kind.DECIMAL:
        return (
            f"Annotated[Decimal, Field(max_digits={field.max_digits}, "
            f"decimal_places={field.decimal_places})]",
            set(),
        )
    return {
        Kind.BOOLEAN: "bool",
        Kind.DATETIME: "datetime",
        Kind.DATE: "date",
        Kind.TIME: "time",
        Kind.FLOAT: "float",
        Kind.UUID: "uuid.UUID",
        Kind.JSON: "Any",
    }[kind], set()


_OUT = {
    Kind.INTEGER: "int",
    Kind.BIG_INTEGER: "int",
    Kind.STRING: "str",
    Kind.TEXT: "str",
    Kind.BOOLEAN: "bool",
    Kind.DECIMAL: "str",
    Kind.DATETIME: "str",
    Kind.DATE: "str",
    Kind.TIME: "str",
    Kind.FLOAT: "float",
    Kind.UUID: "str",
    Kind.JSON: "Any",
}


def schemas_py(spec: ContextSpec) -> str:
    helpers: set[str] = set()
    classes: list[str] = []
    constants: list[str] = []
    for resource in spec.resources:
        model = spec.model(resource.model)
        name = model.name
        inputs: list[str] = []
        outputs: list[str] = []
        for field in resource.fields:
            source = model.field(field.source)
            kind = _OUT[source.kind]
            outputs.append(f"    {field.name}: {kind}{' | None' if source.null else ''}")
            if field.read_only:
                continue
            annotation, used = _input_annotation(source, model)
            if resource.writes:
                helpers |= used
            if source.choices and ("choice" in used and "choice" in helpers):
                constant = f"{snake(model.name).upper()}_{source.column.upper()}_CHOICES"
                constants.append(f"{constant} = {py_literal(tuple(source.choices))}")
            if field.allow_null:
                annotation = f"{annotation} | None"
            if field.required:
                inputs.append(f"    {field.name}: {annotation}")
            elif source.has_default:
                inputs.append(f"    {field.name}: {annotation} = {_literal(source.default)}")
            else:
                inputs.append(f"    {field.name}: {annotation} = Field(default=None)")
        if resource.writes:
            classes += [
                "",
                "",
                f"class {name}In(BaseModel):",
                f'    """``{resource.serializer.rsplit(".", 1)[-1]}``\'s writable fields, parsed as DRF parses them."""',
                "",
                '    model_config = ConfigDict(extra="ignore")',
                "",
                *(inputs or ["    pass"]),
            ]
        classes += [
            "",
            "",
            f"class {name}Out(BaseModel):",
            f'    """What ``{resource.list_path}`` returns per row (the monolith\'s JSON)."""',
            "",
            *outputs,
        ]
    text = "\n".join(classes)
    stdlib: list[str] = []
    if "uuid.UUID" in text:
        stdlib.append("import uuid")
    dated = sorted(
        word for word in ("date", "datetime", "time") if re.search(rf"\b{word}\b(?!\()", text)
    )
    if dated:
        stdlib.append(f"from datetime import {', '.join(dated)}")
    if "Decimal" in text:
        stdlib.append("from decimal import Decimal")
    typing = sorted(
        word
        for word in ("Annotated", "Any")
        if word in text or (word == "Any" and "choice" in helpers)
    )
    if typing:
        stdlib.append(f"from typing import {', '.join(typing)}")
    pydantic = ["BaseModel"]
    if "ConfigDict" in text:
        pydantic.append("ConfigDict")
    if "Field(" in text:
        pydantic.append("Field")
    if "choice" in helpers:
        pydantic.append("BeforeValidator")
    common = sorted(helpers - {"choice"})
    head = [
        f'"""Request bodies and rows of the {spec.context} API, as the monolith\'s DRF serializers',
        'declare them (field names are the monolith\'s; the mapping turns them into columns)."""',
        "",
        "from __future__ import annotations",
        "",
        *stdlib,
        "",
        f"from pydantic import {', '.join(sorted(pydantic))}",
    ]
    if "choice" in helpers:
        head.append("from pydantic_core import PydanticCustomError")
    if common:
        head += ["", f"from extracted_services.common.validation import {', '.join(common)}"]
    if "choice" in helpers:
        head += [
            "",
            *constants,
            "",
            "",
            "def choice(allowed: tuple[str, ...]) -> BeforeValidator:",
            '    """DRF\'s ChoiceField: one of ``allowed``, else ``"x" is not a valid choice.``."""',
            "",
            "    def check(value: Any) -> Any:",
            "        if isinstance(value, str) and value in allowed:",
            "            return value",
            "        raise PydanticCustomError(",
            '            "invalid_choice", \'"{value}" is not a valid choice.\', {"value": str(value)}',
            "        )",
            "",
            "    return BeforeValidator(check)",
        ]
    return "\n".join(head) + "\n" + text + "\n"
