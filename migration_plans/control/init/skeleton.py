"""Write a service package in the services' common shape into ``DIR/<context>_service/``.

    files = skeleton_files(spec, module="shipping_service", source="legacy_monolith")
    write_skeleton(Path("services"), spec, module="shipping_service")

The package is importable with ``DIR`` on ``sys.path``: ``main.create_app``,
``config.Settings`` (``<CONTEXT>_DATABASE_URL``), ``models``, ``db`` (the phase's views),
``schemas``, ``api``, ``crud``, ``deps``, ``alembic.ini`` with ``alembic/env.py`` and the
first revisions, ``contract/allowances.yaml`` for ``strangler contract check``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from migration_plans.control.init.errors import InitError, Unmappable
from migration_plans.control.init.skeleton_api import api_py
from migration_plans.control.init.skeleton_code import (
    crud_py,
    db_py,
    migration_py,
    models_py,
    schemas_py,
)
from migration_plans.control.init.skeleton_templates import (
    ALEMBIC_INI,
    CONFIG,
    DEPS,
    ENV,
    INIT,
    MAIN,
    RELAY_REVISION,
    SCRIPT_MAKO,
)
from migration_plans.control.init.spec import ContextSpec, Kind

INTEGER_KEYS = (Kind.INTEGER, Kind.BIG_INTEGER)
WRITE_METHODS = ("DELETE", "PATCH", "POST", "PUT")


def _name_key(name: str) -> tuple[int, str]:
    """isort's order-by-type: CONSTANTS, then Classes, then the rest."""
    kind = 0 if name.isupper() and len(name) > 1 else 1 if name[:1].isupper() else 2
    return kind, name


def _sorted_block(block: list[str]) -> list[str]:
    plain = sorted((line for line in block if line.startswith("import ")), key=str.lower)
    froms: list[tuple[str, str]] = []
    for line in block:
        if line.startswith("from "):
            module, _, names = line[5:].partition(" import ")
            listed = sorted((name.strip() for name in names.split(",")), key=_name_key)
            froms.append((module, ", ".join(listed)))
    froms.sort(key=lambda item: item[0].lower())
    lines = list(plain)
    for module, names in froms:
        line = f"from {module} import {names}"
        if len(line) > 100:
            wrapped = "".join(f"    {name.strip()},\n" for name in names.split(","))
            line = f"from {module} import (\n{wrapped})"
        lines.append(line)
    return lines


def tidy_imports(text: str) -> str:
    """Each run of one-line imports sorted as ruff's isort sorts a section."""
    lines = text.split("\n")
    tidy: list[str] = []
    block: list[str] = []
    for line in [*lines, None]:
        if line is not None and line.startswith(("from ", "import ")) and "(" not in line:
            block.append(line)
            continue
        tidy += _sorted_block(block)
        block = []
        if line is not None:
            tidy.append(line)
    return re.sub(r"\n\n\n+(?=from |import )", "\n\n", "\n".join(tidy))


def package_name(context: str) -> str:
    """The generated package of ``context``: ``shipping`` -> ``shipping_service``."""
    return f"{context}_service"


def _check_keys(spec: ContextSpec) -> None:
    for model in spec.models:
        if model.key.kind not in INTEGER_KEYS:
            raise Unmappable(
                f"{model.label}.{model.key.name}",
                f"a {model.key.kind} key: the services' write path records integer keys only",
                "write the service's models and crud for this key by hand (--plan-only writes "
                "the plan and the routes without a package)",
            )


def allowances_yaml(spec: ContextSpec) -> str:
    """Accepted differences for ``strangler contract check`` of this context, with reasons."""
    stamped = sorted(
        {
            field.column
            for model in spec.models
            for field in model.fields
            if field.auto_now or field.auto_now_add
        }
    )
    lines = [
        f"# Differences `strangler contract check {spec.context}` accepts, each with its reason",
        "# (format: docs/how-to/contract-check.md). Everything else that differs fails.",
        "allowances:",
        "  - name: options-metadata",
        "    why: >-",
        "      OPTIONS bodies describe the view (DRF's name and docstring); status and Allow",
        "      are compared, the description is not part of the contract.",
        "    methods: [OPTIONS]",
        "    body: true",
    ]
    writes = any(resource.writes for resource in spec.resources)
    if stamped and writes:
        alternatives = "|".join(stamped)
        lines += [
            "  - name: timestamps",
            "    why: >-",
            "      With separate databases each side stamps its own writes, microseconds apart.",
            f"    contexts: [{spec.context}]",
            "    methods: [POST, PUT, PATCH]",
            f"    body_paths: [\"\\\\['({alternatives})'\\\\]$\"]",
            f"    effect_fields: [{', '.join(stamped)}]",
        ]
    partial: list[str] = []
    unserved: set[str] = set()
    for resource in spec.resources:
        for path, detail in ((resource.list_path, False), (resource.detail_path, True)):
            methods = resource.methods(detail)
            if path and methods:
                unserved |= set(WRITE_METHODS) - set(methods)
                if resource.left_to_monolith:
                    partial += [f'"{method} {path}"' for method in methods]
    if unserved:
        lines += [
            "  - name: methods the plan does not route to the service",
            "    why: >-",
            "      The proxy sends a method the plan does not list to the monolith, never to",
            "      the service; the monolith checks permissions first (403 for a caller who",
            "      may not write), the service answers 405 for a method it does not serve.",
            f"    contexts: [{spec.context}]",
            "    kinds: [protocol]",
            f"    methods: [{', '.join(sorted(unserved))}]",
            "    statuses: [[401, 405], [403, 405]]",
        ]
    if partial:
        lines += [
            f"  - name: methods {spec.context} leaves to the monolith",
            "    why: >-",
            "      The plan routes only the generated methods to the service; the monolith's",
            "      views still list the others (their own create, actions) in Allow, and the",
            "      proxy sends those to it.",
            f"    contexts: [{spec.context}]",
            "    operations:",
            *(f"      - {operation}" for operation in partial),
            "    headers: [allow]",
        ]
    return "\n".join(lines) + "\n"


def skeleton_files(spec: ContextSpec, *, module: str, source: str = "") -> dict[str, str]:
    """Every file of the package by path relative to it."""
    _check_keys(spec)
    if not spec.resources:
        raise InitError(
            f"{spec.context}: no viewset of app {spec.app_label!r} could be mapped, so the "
            "service would serve nothing; write the API by hand (--plan-only writes the plan "
            "and the routes without a package)"
        )
    from django.contrib.auth import get_user_model

    user = get_user_model()
    names = {
        "context": spec.context,
        "PREFIX": spec.context.upper(),
        "module": module,
        "source": source or "the Django project",
        "user_table": user._meta.db_table,
        "user_key": user._meta.pk.column,
        "staff_column": user._meta.get_field("is_staff").column,
        "date": datetime.now(UTC).date().isoformat(),
    }
    files = {
        "__init__.py": INIT.substitute(names),
        "config.py": CONFIG.substitute(names),
        "main.py": MAIN.substitute(names),
        "deps.py": DEPS.substitute(names),
        "models.py": models_py(spec),
        "db.py": db_py(spec).replace("{module}", module),
        "crud.py": crud_py(spec).replace("{module}", module),
        "schemas.py": schemas_py(spec),
        "api.py": api_py(spec, module),
        "alembic.ini": ALEMBIC_INI.substitute(names),
        "alembic/env.py": ENV.substitute(names),
        "alembic/script.py.mako": SCRIPT_MAKO,
        "alembic/versions/0001_initial.py": migration_py(spec, names["date"]),
        "alembic/versions/0002_dualwrite_relay_tables.py": RELAY_REVISION.substitute(names),
        "contract/allowances.yaml": allowances_yaml(spec),
    }
    return {
        path: tidy_imports(text) if path.endswith(".py") else text for path, text in files.items()
    }


def write_skeleton(
    out: Path, spec: ContextSpec, *, module: str, source: str = "", overwrite: bool = False
) -> Path:
    """Write the package under ``out``; refuses to overwrite an existing one unless told."""
    files = skeleton_files(spec, module=module, source=source)
    target = out / module.replace(".", "/")
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise InitError(f"{target} exists and is not empty (--force overwrites it)")
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target
