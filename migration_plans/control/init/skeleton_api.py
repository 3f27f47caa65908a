"""The generated ``api.py``: the monolith's list, retrieve, create, update, partial update
and delete endpoints of each viewset the generator could map, in the monolith's JSON.

Reads come from the phase's view; writes need the proxy's identity (staff when the
monolith's permission says so), are refused in shared, and go through ``crud`` with the
phase's ChangeRecorder. Filters, ordering, pagination and row visibility follow the
viewset (django-filter's messages; ``get_queryset``'s SQL compiled by Django).
"""

from __future__ import annotations

import io
import tokenize
from collections.abc import Sequence

from migration_plans.control.init.plan_writer import column_of, pair_name
from migration_plans.control.init.skeleton_code import py_def, py_literal, snake, words
from migration_plans.control.init.spec import ContextSpec, FilterKind, ModelSpec, ResourceSpec

INVALID_MODEL_CHOICE = "Select a valid choice. That choice is not one of the available choices."


def _route(path: str) -> str:
    return path.replace("{id}", "{key}")


def _deps(resource: ResourceSpec, *, reading: bool) -> list[str]:
    """The dependencies a read endpoint takes: who calls, and the monolith when needed."""
    extra: list[str] = []
    if resource.scope is not None:
        extra += ["viewer: ViewerDep", "monolith: MonolithDep"]
    elif not resource.anonymous_reads:
        extra.append("identity: IdentityDep")
    if (
        reading
        and resource.scope is None
        and any(item.kind is FilterKind.MODEL_CHOICE for item in resource.filters)
    ):
        extra.append("monolith: MonolithDep")
    return extra


def _resource_code(spec: ContextSpec, resource: ResourceSpec) -> list[str]:
    model = spec.model(resource.model)
    pair = pair_name(model.name)
    var = snake(model.name)
    upper = pair.upper()
    key = model.key.column
    default_ordering = tuple(
        ("-" if term.startswith("-") else "") + _service(model, term.lstrip("-"))
        for term in resource.ordering
    )
    ordering_lines = [
        f"{upper}_ORDERING = {{",
        *(f'    "{name}": "{model.field(name).column}",' for name in resource.ordering_fields),
        "}",
    ]
    if not resource.ordering_fields:
        ordering_lines = [f"{upper}_ORDERING: dict[str, str] = {{}}"]
    lines: list[str] = [
        "",
        "",
        f"# {model.name} ({resource.viewset}) "
        + "-" * max(3, 60 - len(model.name) - len(resource.viewset)),
        "",
        f"{upper}_FIELDS = (",
        *(f'    ("{field.name}", "{field.source}"),' for field in resource.fields),
        ")",
        f'"""``{resource.serializer.rsplit(".", 1)[-1]}``\'s fields: (JSON name, monolith column)."""',
        *ordering_lines,
        f"{upper}_DEFAULT_ORDERING = {py_literal(default_ordering)}",
    ]
    if resource.scope is not None:
        lines += [
            f"{upper}_VISIBLE = text(",
            f"    {resource.scope.sql!r}",
            ")",
            f'"""The keys a non-staff caller sees: ``{resource.viewset.rsplit(".", 1)[-1]}.get_queryset``',
            'compiled by Django for a sample user; staff see every row."""',
        ]
    lines += [
        "",
        "",
        f"def {var}_json(row: Row) -> dict[str, Any]:",
        f'    """A service-form {words(model.name)} row as the monolith\'s JSON."""',
        f"    monolith_row = crud.{pair}_pair().to_monolith(row)",
        f"    return {{name: render_value(monolith_row[column]) for name, column in {upper}_FIELDS}}",
    ]
    if resource.scope is not None:
        lines += [
            "",
            "",
            *py_def(
                f"_{pair}_visible",
                ["viewer: Viewer", "monolith: Session"],
                "tuple[tuple[str, tuple[Any, ...]], ...]",
            ),
            f'    """Which {pair} the caller may see (no restriction for staff)."""',
            "    if viewer.staff:",
            "        return ()",
            "    keys: tuple[Any, ...] = ()",
            "    if viewer.user_id is not None:",
            f'        keys = tuple(monolith.execute({upper}_VISIBLE, {{"user_id": viewer.user_id}}).scalars())',
            f'    return (("{key}", keys),)',
        ]
    if "list" in resource.actions:
        lines += _list_code(spec, resource, model)
    if "retrieve" in resource.actions:
        lines += _retrieve_code(resource, model)
    if resource.writes:
        lines += _write_code(spec, resource, model)
    return lines


def _service(model: ModelSpec, name: str) -> str:
    field = model.field(name)
    return field.column if field is model.key else column_of(field).service


def _list_code(spec: ContextSpec, resource: ResourceSpec, model: ModelSpec) -> list[str]:
    pair = pair_name(model.name)
    upper = pair.upper()
    params = [
        "request: Request",
        "session: SessionDep",
        "views: ViewsDep",
        *_deps(resource, reading=True),
    ]
    lines = [
        "",
        "",
        f'@router.get("{_route(resource.list_path)}", response_model=None)',
        *py_def(f"list_{pair}", params, "dict[str, Any]"),
        f'    """``GET {resource.list_path}``: one page, filtered and ordered as the monolith does."""',
        "    errors = FilterErrors()",
        "    wanted: dict[str, Any] = {",
    ]
    for item in resource.filters:
        field = model.field(item.column)
        if item.kind is FilterKind.MODEL_CHOICE and field.target is not None:
            call = (
                f'model_choice(request, "{item.name}", monolith, "{field.target.db_table}", '
                f'"{field.target.key_column}", errors)'
            )
        elif item.kind is FilterKind.CHOICE:
            call = f'choice_filter(request, "{item.name}", {py_literal(field.choices)}, errors)'
        elif item.kind is FilterKind.BOOLEAN:
            call = f'boolean_filter(request, "{item.name}")'
        else:
            call = f'text_filter(request, "{item.name}", errors)'
        lines.append(f'        "{item.column}": {call},')
    if not resource.filters:
        lines[-1] = "    wanted: dict[str, Any] = {}"
    lines += [
        *(["    }"] if resource.filters else []),
        "    raise_for(errors)",
        f"    pair = crud.{pair}_pair()",
        "    present = {column: value for column, value in wanted.items() if value is not None}",
        "    query = Query(",
        "        filters=tuple(service_values(pair, present).items()),",
    ]
    if resource.scope is not None:
        lines.append(f"        within=_{pair}_visible(viewer, monolith),")
    lines += [
        "        ordering=ordering(",
        "            request,",
        f"            {{name: service_column(pair, column) for name, column in {upper}_ORDERING.items()}},",
        f"            {upper}_DEFAULT_ORDERING,",
        "        ),",
        "    )",
        f'    return page_of(request, session, views["{pair}"], query, {snake(model.name)}_json)',
    ]
    return lines


def _retrieve_code(resource: ResourceSpec, model: ModelSpec) -> list[str]:
    pair = pair_name(model.name)
    var = snake(model.name)
    params = ["key: str", "session: SessionDep", "views: ViewsDep", *_deps(resource, reading=False)]
    lines = [
        "",
        "",
        f'@router.get("{_route(resource.detail_path)}", response_model=None)',
        *py_def(f"get_{var}", params, "dict[str, Any]"),
        f'    """``GET {resource.detail_path}``: one {words(model.name)}, 404 when absent or not visible."""',
        f'    row = get(session, views["{pair}"], parse_key(key))',
        "    if row is None:",
        "        raise NotFound()",
    ]
    if resource.scope is not None:
        lines += [
            f"    for column, keys in _{pair}_visible(viewer, monolith):",
            "        if row[column] not in keys:",
            "            raise NotFound()",
        ]
    lines.append(f"    return {var}_json(row)")
    return lines


def _write_code(spec: ContextSpec, resource: ResourceSpec, model: ModelSpec) -> list[str]:
    pair = pair_name(model.name)
    var = snake(model.name)
    name = model.name
    changes = "StaffChangesDep" if resource.staff_writes_only else "ChangesDep"
    writable = [field for field in resource.fields if not field.read_only]
    checks: list[str] = []
    for field in writable:
        source = model.field(field.source)
        column = column_of(source).service
        if source.unique:
            checks += [
                f'    if "{column}" in values:',
                f'        clash = select({name}.{model.key.column}).where({name}.{column} == values["{column}"])',
                "        if current is not None:",
                f"            clash = clash.where({name}.{model.key.column} != current.{model.key.column})",
                "        if session.scalar(clash) is not None:",
                f'            errors["{field.name}"] = ["{words(name)} with this {source.name.replace("_", " ")} already exists."]',
            ]
        if source.target is not None:
            target = next((m for m in spec.models if m.db_table == source.target.db_table), None)
            if target is not None:
                exists = f'session.get({target.name}, values["{column}"]) is None'
            else:
                exists = (
                    f'not exists(monolith, "{source.target.db_table}", '
                    f'"{source.target.key_column}", values["{column}"])'
                )
            checks += [
                f'    if "{column}" in values and {exists}:',
                f'        errors["{field.name}"] = [f\'Invalid pk "{{values["{column}"]}}" - object does not exist.\']',
            ]
    renames = {field.name: field.source for field in writable if field.name != field.source}
    lines = [
        "",
        "",
        f"{pair.upper()}_RENAMES: dict[str, str] = {py_literal(renames)}",
        '"""JSON names of the serializer that are not the monolith\'s column names."""',
        "",
        "",
        f"def _{var}_values(",
        "    session: Session,",
        "    monolith: Session,",
        "    body: RawBody,",
        "    *,",
        f"    current: {name} | None,",
        "    partial: bool,",
        ") -> dict[str, Any]:",
        '    """The body as service-form values; 400 with every field error."""',
        f"    parsed, errors = parse_fields({name}In, require_object(body.json()), partial=partial)",
        f"    legacy = {{{pair.upper()}_RENAMES.get(field, field): value for field, value in parsed.items()}}",
        f"    values = service_values(crud.{pair}_pair(), legacy)",
        *checks,
        "    raise_for(errors)",
        "    return values",
        "",
        "",
        f"def _load_{var}(session: Session, key: str) -> {name}:",
        f"    {var} = session.get({name}, parse_key(key))",
        f"    if {var} is None:",
        "        raise NotFound()",
        f"    return {var}",
        "",
        "",
        f"def _{var}_body({var}: {name}) -> dict[str, Any]:",
        f"    return {var}_json(row_image({var}, crud.{pair}_pair().service_columns))",
    ]
    if "create" in resource.actions:
        lines += [
            "",
            "",
            f'@router.post("{_route(resource.list_path)}", status_code=201, response_model=None)',
            f"def create_{var}(",
            f"    session: WriteSessionDep, monolith: MonolithDep, changes: {changes}, body: BodyDep",
            ") -> dict[str, Any]:",
            f'    """``POST {resource.list_path}``."""',
            "    with session.begin():",
            f"        values = _{var}_values(session, monolith, body, current=None, partial=False)",
            f"        {var} = crud.create_{var}(session, values, changes=changes)",
            f"    return _{var}_body({var})",
        ]
    for action, method, partial in (("update", "put", False), ("partial_update", "patch", True)):
        if action in resource.actions:
            lines += [
                "",
                "",
                f'@router.{method}("{_route(resource.detail_path)}", response_model=None)',
                f"def {action}_{var}(",
                "    key: str,",
                "    session: WriteSessionDep,",
                "    monolith: MonolithDep,",
                f"    changes: {changes},",
                "    body: BodyDep,",
                ") -> dict[str, Any]:",
                f'    """``{method.upper()} {resource.detail_path}``."""',
                "    with session.begin():",
                f"        {var} = _load_{var}(session, key)",
                f"        values = _{var}_values(session, monolith, body, current={var}, partial={partial})",
                f"        crud.update_{var}(session, {var}, values, changes=changes)",
                f"    return _{var}_body({var})",
            ]
    if "destroy" in resource.actions:
        tables = {m.db_table for m in spec.models}
        outside = [item for item in model.protected_by if item[0] not in tables]
        protect: list[str] = []
        if outside:
            lines += [
                "",
                f"{pair.upper()}_PROTECTED = {py_literal(tuple(outside))}",
                '"""(table, column) of the monolith\'s foreign keys into this table with',
                'on_delete PROTECT/RESTRICT, from models outside the context."""',
            ]
            protect = [
                f"            if referenced(monolith, {pair.upper()}_PROTECTED, {var}.{model.key.column}):",
                "                raise InUse()",
            ]
        lines += [
            "",
            "",
            f'@router.delete("{_route(resource.detail_path)}", status_code=204, response_class=Response)',
            f"def delete_{var}(",
            "    key: str,",
            "    session: WriteSessionDep,",
            *(["    monolith: MonolithDep,"] if outside else []),
            f"    changes: {changes},",
            "    references: ReferencesDep,",
            ") -> Response:",
            f'    """``DELETE {resource.detail_path}``: 409 ``in_use`` while other rows reference it."""',
            "    try:",
            "        with session.begin():",
            f"            {var} = _load_{var}(session, key)",
            f'            references.refuse_if_referenced("{pair}", {var}.{model.key.column})',
            *protect,
            f"            crud.delete_{var}(session, {var}, changes=changes)",
            "    except IntegrityError as exc:",
            "        raise InUse() from exc",
            "    return Response(status_code=204)",
        ]
    return lines


REFERENCED = [
    "",
    "",
    "def referenced(monolith: Session, protected: tuple[tuple[str, str], ...], key: Any) -> bool:",
    '    """Whether a monolith row of another context still references ``key`` (its foreign',
    '    key forbids the delete)."""',
    "    for table, column in protected:",
    '        statement = text(f\'SELECT 1 FROM "{table}" WHERE "{column}" = :key LIMIT 1\')',
    '        if monolith.execute(statement, {"key": key}).first() is not None:',
    "            return True",
    "    return False",
]

HELPERS = [
    "",
    "",
    "def model_choice(",
    "    request: Request, name: str, monolith: Session, table: str, column: str, errors: FilterErrors",
    ") -> int | None:",
    "    \"\"\"django-filter's ``ModelChoiceFilter``: an existing row's key (Django's integer",
    '    parsing), else 400 with its message."""',
    '    raw = request.query_params.get(name, "")',
    "    if not raw:",
    "        return None",
    "    try:",
    '        key = int(re.sub(r"\\.0*\\s*$", "", raw))',
    "    except ValueError:",
    "        key = None",
    "    if key is None or not INT64[0] <= key <= INT64[1] or not exists(monolith, table, column, key):",
    "        errors[name] = [INVALID_MODEL_CHOICE]",
    "        return None",
    "    return key",
    "",
    "",
    "def choice_filter(",
    "    request: Request, name: str, allowed: tuple[str, ...], errors: FilterErrors",
    ") -> str | None:",
    '    """django-filter\'s ``ChoiceFilter``."""',
    '    raw = request.query_params.get(name, "")',
    "    if not raw:",
    "        return None",
    "    if raw not in allowed:",
    "        errors[name] = [INVALID_CHOICE.format(value=raw)]",
    "        return None",
    "    return raw",
    "",
    "",
    "def exists(monolith: Session, table: str, column: str, key: Any) -> bool:",
    '    """Whether the monolith\'s ``table`` has a row with ``column`` = ``key``."""',
    '    statement = text(f\'SELECT 1 FROM "{table}" WHERE "{column}" = :key\')',
    '    return monolith.execute(statement, {"key": key}).first() is not None',
]


def used_names(code: str) -> set[str]:
    """The names ``code`` refers to (not attributes, strings or comments)."""
    names: set[str] = set()
    previous = ""
    for token in tokenize.generate_tokens(io.StringIO(code).readline):
        if token.type == tokenize.NAME and previous != ".":
            names.add(token.string)
        if token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT):
            previous = token.string
    return names


def import_lines(code: str, candidates: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """``from module import names`` for each candidate name ``code`` uses."""
    names = used_names(code)
    lines = []
    for module, offered in candidates:
        wanted = [name for name in offered if name in names]
        if wanted:
            lines.append(f"from {module} import {', '.join(wanted)}")
    return lines


def api_py(spec: ContextSpec, module: str) -> str:
    body: list[str] = []
    for resource in spec.resources:
        body += _resource_code(spec, resource)
    text = "\n".join(body)
    names = used_names(text)
    needs_helpers = bool({"model_choice", "choice_filter", "exists"} & names)
    if needs_helpers:
        text += "\n" + "\n".join(HELPERS)
    if "referenced" in names:
        text += "\n" + "\n".join(REFERENCED)
    models = sorted(m.name for m in spec.models)
    inputs = sorted(f"{r.model}In" for r in spec.resources)
    deps = (
        "BodyDep", "ChangesDep", "IdentityDep", "MonolithDep", "ReferencesDep", "SessionDep",
        "StaffChangesDep", "Viewer", "ViewerDep", "ViewsDep", "WriteSessionDep",
    )  # fmt: skip
    stdlib = ["import re"] if "re" in used_names(text) else []
    stdlib += import_lines(text, [("typing", ("Any",))])
    third = import_lines(
        "APIRouter\n" + text,
        [
            ("fastapi", ("APIRouter", "Request", "Response")),
            ("sqlalchemy", ("select", "text")),
            ("sqlalchemy.exc", ("IntegrityError",)),
            ("sqlalchemy.orm", ("Session",)),
        ],
    )
    ours = import_lines(
        text,
        [
            ("extracted_services.common.changes", ("row_image",)),
            ("extracted_services.common.deps", ("RawBody",)),
            ("extracted_services.common.errors", ("InUse", "NotFound")),
            ("extracted_services.common.legacy", ("render_value", "service_column", "service_values")),
            (
                "extracted_services.common.listing",
                ("FilterErrors", "boolean_filter", "ordering", "page_of", "parse_key", "raise_for",
                 "text_filter"),
            ),
            ("extracted_services.common.store", ("Query", "get")),
            ("extracted_services.common.validation", ("INT64", "parse_fields", "require_object")),
            ("migration_plans.core.mapping", ("Row",)),
            (module, ("crud",)),
            (f"{module}.deps", deps),
            (f"{module}.models", models),
            (f"{module}.schemas", inputs),
        ],
    )  # fmt: skip
    head = [
        f'"""The {spec.context} HTTP API, generated by `strangler init` from the monolith\'s viewsets.',
        "",
        "Reads come from the phase's view (the monolith's tables in shared, the service's own",
        "otherwise), rendered in the monolith's JSON through the mapping. Writes need the",
        "proxy's identity header, are refused in shared, and go through ``crud``.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        *stdlib,
        "",
        *third,
        "",
        *ours,
        "",
        "router = APIRouter()",
    ]
    if needs_helpers:
        head += [
            "",
            f'INVALID_MODEL_CHOICE = "{INVALID_MODEL_CHOICE}"',
            'INVALID_CHOICE = "Select a valid choice. {value} is not one of the available choices."',
        ]
    return "\n".join(head) + text + "\n"
