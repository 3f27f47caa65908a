"""The site's generated references, written from the code at every ``mkdocs build``.

A mkdocs hook (``hooks:`` in ``mkdocs.yml``): :func:`on_files` adds the pages below to
the build, so nothing under ``docs/reference/`` is written by hand and nothing drifts.

- ``reference/cli.md``: every ``strangler`` command and option, walked from the Typer app
  (:func:`cli_commands`);
- ``reference/environment.md``: every environment variable the packages read, found by
  an AST scan of the code that reads the environment (:func:`env_vars`), with its default
  and a description (:data:`DESCRIPTIONS`);
- ``reference/route-table.md`` and ``reference/plan-file.md``: the route table and plan
  file fields, from the pydantic models' JSON Schemas;
- ``reference/metrics.md``: every Prometheus metric the processes define (AST scan).

The functions are plain (no mkdocs import) so ``tests/docs/test_reference.py`` calls
them directly.
"""

from __future__ import annotations

import ast
import copy
import functools
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "legacy_monolith",
    "strangler_proxy",
    "extracted_services",
    "dualwrite",
    "reconciler",
    "migration_plans",
)
GENERATED_NOTE = (
    '!!! note "Generated"\n    This page is generated from the code at every build '
    "(`docs/hooks/reference.py`); edit the code, not this page.\n"
)

# ---------------------------------------------------------------------------------- CLI


@dataclass(frozen=True)
class Param:
    """One argument or option of a command."""

    name: str
    kind: str  # "argument" | "option"
    opts: tuple[str, ...]
    type: str
    default: str
    required: bool
    envvar: tuple[str, ...]
    help: str


@dataclass(frozen=True)
class Command:
    """One command (or group) of the ``strangler`` CLI."""

    path: str  # "strangler plan advance"
    help: str
    usage: str
    params: tuple[Param, ...]
    subcommands: tuple[str, ...] = ()


def _root_command() -> Any:
    import typer.main

    from migration_plans.control.cli import app

    return typer.main.get_command(app)


def _param_type(param: Any, ctx: Any) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " | ".join(str(member.value) for member in annotation)
    shown = str(param.display_type(ctx)).strip("<>")
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is not None or high is not None:
        bounds = [f">= {low}" if low is not None else "", f"<= {high}" if high is not None else ""]
        shown = shown.replace(" range", "") + f" ({', '.join(b for b in bounds if b)})"
    return shown


def _default(param: Any) -> str:
    if getattr(param, "is_flag", False) and getattr(param, "secondary_opts", None):
        return "on" if param.default else "off"
    default = param.default
    if callable(default):
        return "(computed)"
    if default is None or default == ():
        return ""
    value = getattr(default, "value", default)
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _envvars(param: Any) -> tuple[str, ...]:
    envvar = getattr(param, "envvar", None)
    if not envvar:
        return ()
    return (envvar,) if isinstance(envvar, str) else tuple(envvar)


def _params(command: Any, ctx: Any) -> tuple[Param, ...]:
    found = []
    for param in command.params:
        if param.name in {"install_completion", "show_completion"}:
            continue
        if getattr(param, "hidden", False):
            continue
        opts = tuple(param.opts) + tuple(getattr(param, "secondary_opts", ()) or ())
        found.append(
            Param(
                name=str(param.name),
                kind=str(param.param_type_name),
                opts=opts,
                type=_param_type(param, ctx),
                default=_default(param),
                required=bool(param.required),
                envvar=_envvars(param),
                help=" ".join((getattr(param, "help", None) or "").split()),
            )
        )
    return tuple(found)


def cli_commands() -> list[Command]:
    """Every command of the ``strangler`` CLI, depth first, groups before their commands."""
    root = _root_command()
    found: list[Command] = []

    def walk(command: Any, path: str, ctx: Any) -> None:
        subcommands: list[tuple[str, Any]] = []
        if hasattr(command, "list_commands"):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None and not getattr(sub, "hidden", False):
                    subcommands.append((name, sub))
        found.append(
            Command(
                path=path,
                help=(command.help or "").strip(),
                usage=command.get_usage(ctx).strip(),
                params=_params(command, ctx),
                subcommands=tuple(f"{path} {name}" for name, _ in subcommands),
            )
        )
        for name, sub in subcommands:
            walk(sub, f"{path} {name}", sub.context_class(sub, parent=ctx, info_name=name))

    walk(root, "strangler", root.context_class(root, info_name="strangler"))
    return found


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _anchor(path: str) -> str:
    return path.replace(" ", "-")


def cli_markdown(commands: list[Command] | None = None) -> str:
    """``reference/cli.md``."""
    commands = commands if commands is not None else cli_commands()
    out = [
        "# Command line",
        "",
        GENERATED_NOTE,
        "The `strangler` console script (`[project.scripts]` in `pyproject.toml`: "
        "`migration_plans.control.cli:main`) mounts every package's commands. "
        "`python -m strangler_proxy` runs the bare `proxy` and `routes` commands "
        "(no plan rules, no dashboard).",
        "",
    ]
    for command in commands:
        depth = min(command.path.count(" ") + 1, 4)
        out += [f"{'#' * (depth + 1)} {command.path} {{#{_anchor(command.path)}}}", ""]
        if command.help:
            out += [_escape_help(command.help), ""]
        out += ["```text", command.usage, "```", ""]
        if command.subcommands:
            out += [
                "Commands: "
                + ", ".join(
                    f"[`{sub.rsplit(' ', 1)[1]}`](#{_anchor(sub)})" for sub in command.subcommands
                ),
                "",
            ]
        if command.params:
            out += [
                "| argument / option | type | default | environment | help |",
                "|---|---|---|---|---|",
            ]
            for p in command.params:
                name = (
                    ", ".join(f"`{o}`" for o in p.opts)
                    if p.kind == "option"
                    else f"`{p.name.upper()}`"
                )
                if p.required:
                    name += " (required)"
                env = ", ".join(f"`{e}`" for e in p.envvar)
                default = f"`{p.default}`" if p.default else ""
                out.append(
                    f"| {name} | {_cell(p.type)} | {_cell(default)} | {env} | {_cell(p.help)} |"
                )
            out.append("")
    return "\n".join(out)


def _escape_help(text: str) -> str:
    # Typer help is plain text: keep its paragraphs, never let it open Markdown structures.
    lines = [line.strip() for line in text.splitlines()]
    return "\n".join(line.replace("<", "&lt;") for line in lines)


# --------------------------------------------------------------------- environment scan


@dataclass
class EnvVar:
    """One environment variable the code reads."""

    name: str
    defaults: set[str] = field(default_factory=set)
    sites: set[str] = field(default_factory=set)  # "package/module.py"

    @property
    def default(self) -> str:
        """The defaults as Markdown: literals in code, computed ones with their expression."""
        shown = []
        for value in sorted(d for d in self.defaults if d):
            shown.append(value if value.startswith(("computed: ", "`")) else f"`{value}`")
        return " or ".join(shown)


@dataclass(frozen=True)
class DynamicRead:
    """A read whose variable name the scan cannot know statically (documented by hand)."""

    site: str
    expression: str


@dataclass
class _Module:
    path: Path
    rel: str
    name: str
    tree: ast.Module
    constants: dict[str, ast.expr]
    parents: dict[ast.AST, ast.AST]
    calls: dict[str, list[ast.Call]]  # by callee name


def _modules(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> list[_Module]:
    return _parsed(root, tuple(packages))


@functools.cache
def _parsed(root: Path, packages: tuple[str, ...]) -> list[_Module]:
    texts: dict[str, tuple[Path, str, str]] = {}  # module -> (path, rel, text)
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if "/migrations/" in rel or "/alembic/versions/" in rel:
                continue
            module = rel[: -len(".py")].replace("/", ".").removesuffix(".__init__")
            texts[module] = (path, rel, path.read_text())
    return [_parse(*texts[name], name) for name in sorted(_relevant(texts))]


_MARKERS = re.compile(r"env|prometheus_client|BaseSettings")
_FROM_IMPORT = re.compile(r"^\s*from ([\w.]+) import", re.MULTILINE)


def _relevant(texts: dict[str, tuple[Path, str, str]]) -> set[str]:
    """Modules that can read the environment or define metrics (their text names it),
    plus the modules they import from and the modules importing from them: parsing
    only these keeps the scan fast without losing a helper's callers or constants."""
    imports = {
        name: set(_FROM_IMPORT.findall(text)) & texts.keys() for name, (_, _, text) in texts.items()
    }
    marked = {name for name, (_, _, text) in texts.items() if _MARKERS.search(text)}
    used = set().union(*(imports[name] for name in marked)) if marked else set()
    users = {name for name, imported in imports.items() if imported & marked}
    return marked | used | users


def _parse(path: Path, rel: str, text: str, module: str) -> _Module:
    tree = ast.parse(text, filename=rel)
    constants: dict[str, ast.expr] = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target = statement.targets[0]
            if isinstance(target, ast.Name):
                constants[target.id] = statement.value
        elif (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and statement.value is not None
        ):
            constants[statement.target.id] = statement.value
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    calls: dict[str, list[ast.Call]] = {}
    for node in parents:
        if isinstance(node, ast.Call):
            calls.setdefault(_callee(node), []).append(node)
    return _Module(path, rel, module, tree, constants, parents, calls)


# Functions that read one variable given its name (first argument) and a default.
_NAMED_READERS = {"env_number": 1, "env_bool": 1, "env_list": 1}
# context_env(context, NAME, default): <CONTEXT>_NAME, else STRANGLER_NAME.
_CONTEXT_READER = "context_env"
_ENV_RECEIVERS = {"environ", "env", "environment"}
_GET_METHODS = {"get", "setdefault", "pop"}


class _Scanner:
    """Finds environment reads in the packages and resolves their names and defaults."""

    def __init__(self, root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> None:
        self.modules = _modules(root, packages)
        self.by_name = {m.name: m for m in self.modules}
        self.vars: dict[str, EnvVar] = {}
        self.dynamic: list[DynamicRead] = []

    # -- name resolution -------------------------------------------------------------

    def _constant(self, module: _Module, name: str) -> ast.expr | None:
        if name in module.constants:
            return module.constants[name]
        for node in module.tree.body:
            if isinstance(node, ast.ImportFrom) and node.module in self.by_name:
                for alias in node.names:
                    if (alias.asname or alias.name) == name:
                        return self._constant(self.by_name[node.module], alias.name)
        return None

    def _function_of(self, module: _Module, node: ast.AST) -> ast.FunctionDef | None:
        current = module.parents.get(node)
        while current is not None:
            if isinstance(current, ast.FunctionDef | ast.AsyncFunctionDef):
                return current  # type: ignore[return-value]
            current = module.parents.get(current)
        return None

    def _class_of(self, module: _Module, node: ast.AST) -> ast.ClassDef | None:
        current = module.parents.get(node)
        while current is not None:
            if isinstance(current, ast.ClassDef):
                return current
            current = module.parents.get(current)
        return None

    def _callers(
        self, module: _Module, function: ast.FunctionDef
    ) -> Iterator[tuple[_Module, ast.Call]]:
        """Calls of ``function``: inside its enclosing function when nested, else anywhere
        in its module or in a module importing it by name."""
        outer = self._function_of(module, function)
        scopes: list[tuple[_Module, ast.AST]]
        if outer is not None:
            scopes = [(module, outer)]
        else:
            scopes = [(module, module.tree)]
            for other in self.modules:
                for statement in other.tree.body:
                    if (
                        isinstance(statement, ast.ImportFrom)
                        and statement.module == module.name
                        and any(a.name == function.name for a in statement.names)
                    ):
                        scopes.append((other, other.tree))
        for owner, scope in scopes:
            for found in owner.calls.get(function.name, []):
                if scope is owner.tree or _inside(owner, found, scope):
                    yield owner, found
            yield from self._called_as_argument(owner, scope, function.name)

    def _called_as_argument(
        self, owner: _Module, scope: ast.AST, name: str
    ) -> Iterator[tuple[_Module, ast.Call]]:
        """Calls of ``name`` made by a function it is passed to (``helper(env, number)``)."""
        for call in ast.walk(scope):
            if not isinstance(call, ast.Call):
                continue
            for index, argument in enumerate(call.args):
                if not (isinstance(argument, ast.Name) and argument.id == name):
                    continue
                found = self._function_and_module(owner, _callee(call))
                if found is None:
                    continue
                home, target = found
                params = [a.arg for a in target.args.posonlyargs + target.args.args]
                if index < len(params):
                    for inner in home.calls.get(params[index], []):
                        if _inside(home, inner, target):
                            yield home, inner

    def _argument(self, function: ast.FunctionDef, call: ast.Call, name: str) -> ast.expr | None:
        names = [a.arg for a in function.args.posonlyargs + function.args.args]
        if names and names[0] in {"self", "cls"}:
            names = names[1:]
        for keyword in call.keywords:
            if keyword.arg == name:
                return keyword.value
        if name in names and names.index(name) < len(call.args):
            return call.args[names.index(name)]
        return None

    def names(self, module: _Module, expr: ast.expr, depth: int = 0) -> list[str] | None:
        """Every string ``expr`` can be (None when not statically known)."""
        if depth > 6:
            return None
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return [expr.value]
        if (
            isinstance(expr, ast.Call)
            and isinstance(expr.func, ast.Attribute)
            and expr.func.attr in {"upper", "lower", "strip"}
            and not expr.args
        ):
            inner = self.names(module, expr.func.value, depth + 1)
            if inner is None:
                return None
            return [getattr(value, expr.func.attr)() for value in inner]
        if isinstance(expr, ast.JoinedStr):
            parts: list[list[str]] = []
            for value in expr.values:
                if isinstance(value, ast.Constant):
                    parts.append([str(value.value)])
                elif isinstance(value, ast.FormattedValue):
                    parts.append(self._placeholder(module, value.value, depth))
            return ["".join(p) for p in itertools.product(*parts)]
        if isinstance(expr, ast.Name):
            function = self._function_of(module, expr)
            if function is not None:
                loop = self._loop_values(module, function, expr.id, depth)
                if loop is not None:
                    return loop
                params = [
                    a.arg
                    for a in function.args.posonlyargs
                    + function.args.args
                    + function.args.kwonlyargs
                ]
                if expr.id in params:
                    found: list[str] = []
                    for owner, call in self._callers(module, function):
                        argument = self._argument(function, call, expr.id)
                        if argument is None:
                            continue
                        values = self.names(owner, argument, depth + 1)
                        if values is None:
                            return None
                        found += values
                    return found
            constant = self._constant(module, expr.id)
            if constant is not None:
                return self.names(module, constant, depth + 1)
        return None

    def _placeholder(self, module: _Module, expr: ast.expr, depth: int) -> list[str]:
        known = self.names(module, expr, depth + 1)
        if known is not None:
            return known
        root = expr
        while isinstance(root, ast.Call | ast.Attribute):
            root = root.func if isinstance(root, ast.Call) else root.value
        label = root.id if isinstance(root, ast.Name) else "VALUE"
        if label in {"cls", "self", "ctx"}:
            label = "context"
        return [f"<{label.upper()}>"]

    def _loop_values(
        self, module: _Module, function: ast.AST, name: str, depth: int
    ) -> list[str] | None:
        """Values of a loop variable bound by ``for`` or a comprehension over a literal
        tuple or list (of tuples, when unpacked) or a constant dict's keys."""
        for node in ast.walk(function):
            if isinstance(node, ast.For | ast.comprehension):
                values = self._iteration(module, node.target, node.iter, name, depth)
                if values is not None:
                    return values
        return None

    def _iteration(
        self, module: _Module, target: ast.expr, iterable: ast.expr, name: str, depth: int
    ) -> list[str] | None:
        position: int | None = None
        if isinstance(target, ast.Name):
            if target.id != name:
                return None
        elif isinstance(target, ast.Tuple):
            ids = [e.id if isinstance(e, ast.Name) else "" for e in target.elts]
            if name not in ids:
                return None
            position = ids.index(name)
        else:
            return None
        if (
            isinstance(iterable, ast.Call)
            and isinstance(iterable.func, ast.Attribute)
            and iterable.func.attr in {"items", "keys"}
        ):
            constant = self._dict(module, iterable.func.value)
            if constant is not None and position in (None, 0):
                return [str(k.value) for k in constant.keys if isinstance(k, ast.Constant)]
            return None
        if not isinstance(iterable, ast.Tuple | ast.List):
            return None
        found: list[str] = []
        for element in iterable.elts:
            if position is not None:
                if not isinstance(element, ast.Tuple | ast.List) or position >= len(element.elts):
                    return None
                element = element.elts[position]
            values = self.names(module, element, depth + 1)
            if values is None:
                return None
            found += values
        return found

    def _dict(self, module: _Module, expr: ast.expr) -> ast.Dict | None:
        seen = 0
        while isinstance(expr, ast.Name) and seen < 5:
            constant = self._constant(module, expr.id)
            if constant is None:
                return None
            expr, seen = constant, seen + 1
        return expr if isinstance(expr, ast.Dict) else None

    def default(self, module: _Module, expr: ast.expr | None) -> str:
        """A default as documentation: a literal, a constant's value, or the expression."""
        if expr is None:
            return ""
        if isinstance(expr, ast.Constant):
            return (
                ""
                if expr.value in ("", None)
                else repr(expr.value)
                if isinstance(expr.value, str)
                else str(expr.value)
            )
        if isinstance(expr, ast.Name):
            constant = self._constant(module, expr.id)
            if constant is not None and not isinstance(constant, ast.Name | ast.Call):
                return self.default(module, constant)
        if (
            isinstance(expr, ast.Attribute)
            and isinstance(expr.value, ast.Name)
            and expr.value.id == "cls"
        ):
            owner = self._class_of(module, expr)
            if owner is not None:
                for node in owner.body:
                    if (
                        isinstance(node, ast.AnnAssign)
                        and isinstance(node.target, ast.Name)
                        and node.target.id == expr.attr
                    ):
                        return self.default(module, node.value)
        if isinstance(expr, ast.Call):
            field_default = self._instance_field_default(module, expr)
            if field_default is not None:
                return field_default
        if isinstance(expr, ast.BinOp) and all(
            isinstance(n, ast.BinOp | ast.Constant | ast.operator) for n in ast.walk(expr)
        ):
            return str(
                eval(compile(ast.Expression(expr), "<default>", "eval"), {"__builtins__": {}})
            )
        return f"computed: `{ast.unparse(expr)}`"

    # -- reads -----------------------------------------------------------------------

    def record(
        self,
        module: _Module,
        node: ast.AST,
        key: ast.expr,
        default: ast.expr | None,
        depth: int = 0,
    ) -> None:
        if default is None or (isinstance(default, ast.Constant) and default.value in ("", None)):
            default = self._or_default(module, node) or default
        function = self._function_of(module, node)
        bound = self._bound_params(module, function, key) if function is not None else set()
        if default is None and function is not None and bound and _has_param(function, "default"):
            default = ast.Name("default", ast.Load())  # a helper returning its default when unset
        if function is not None and bound and depth < 4:
            # The name (and the default) come from the function's callers: read them there.
            for owner, call in self._callers(module, function):
                bindings = {
                    p: self._argument(function, call, p) or _param_default(function, p)
                    for p in bound | _names_in(default)
                }
                new_key = _substitute(key, bindings)
                assert new_key is not None
                self.record(owner, call, new_key, _substitute(default, bindings), depth + 1)
            return
        loops = self._loop_names(module, function, key) if function is not None else {}
        if loops and depth < 8:
            # One record per value of a loop variable, so each name gets its own default.
            variable, values = next(iter(loops.items()))
            for each in values:
                value_of: dict[str, ast.expr | None] = {variable: ast.Constant(each)}
                new_key = _substitute(key, value_of)
                assert new_key is not None
                self.record(module, node, new_key, _substitute(default, value_of), depth + 1)
            return
        names = self.names(module, key)
        if names is None:
            self.dynamic.append(DynamicRead(module.rel, ast.unparse(key)))
            return
        value = self.default(module, default)
        description = self._field_description(module, node)
        for name in names:
            var = self.vars.setdefault(name, EnvVar(name))
            var.defaults.add(value)
            var.sites.add(module.rel)
            if description:
                FIELD_DESCRIPTIONS.setdefault(name, description)

    def _field_description(self, module: _Module, node: ast.AST) -> str:
        """The ``description=`` of the pydantic ``Field(...)`` whose default reads ``node``."""
        current = module.parents.get(node)
        while current is not None and not isinstance(current, ast.stmt):
            if isinstance(current, ast.Call) and _callee(current) == "Field":
                for keyword in current.keywords:
                    if keyword.arg == "description" and isinstance(keyword.value, ast.Constant):
                        text = str(keyword.value.value)
                        return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
            current = module.parents.get(current)
        return ""

    def _loop_names(
        self, module: _Module, function: ast.FunctionDef, key: ast.expr
    ) -> dict[str, list[str]]:
        """Loop variables ``key`` uses, with the values the loop gives them."""
        found = {}
        for name in sorted(_names_in(key)):
            values = self._loop_values(module, function, name, 0)
            if values is not None:
                found[name] = values
        return found

    def _bound_params(self, module: _Module, function: ast.FunctionDef, key: ast.expr) -> set[str]:
        """Parameters of ``function`` that ``key`` uses (loop variables excluded)."""
        args = function.args
        params = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs} - {"self", "cls"}
        used = _names_in(key) & params
        return {n for n in used if self._loop_values(module, function, n, 0) is None}

    def _or_default(self, module: _Module, node: ast.AST) -> ast.expr | None:
        parent = module.parents.get(node)
        if (
            isinstance(parent, ast.BoolOp)
            and isinstance(parent.op, ast.Or)
            and parent.values[0] is node
        ):
            return parent.values[-1]
        return None

    def _in_reader(self, module: _Module, node: ast.AST) -> bool:
        function = self._function_of(module, node)
        return function is not None and function.name in {*_NAMED_READERS, _CONTEXT_READER}

    def scan(self) -> None:
        for module in self.modules:
            for node in ast.walk(module.tree):
                if isinstance(node, ast.Call):
                    self._call(module, node)
                elif self._reads_subscript(module, node):
                    assert isinstance(node, ast.Subscript)
                    self.record(module, node, node.slice, None)
            self._settings_models(module)

    def _call(self, module: _Module, node: ast.Call) -> None:
        callee = _callee(node)
        args = node.args
        if isinstance(node.func, ast.Attribute) and node.func.attr in _GET_METHODS:
            receiver = _receiver(node.func.value)
            if node.func.attr == "setdefault" and ast.unparse(node.func.value) != "os.environ":
                return  # filling a child process's environment, not reading ours
            if receiver in _ENV_RECEIVERS and args and not self._in_reader(module, node):
                self.record(module, node, args[0], args[1] if len(args) > 1 else None)
        elif callee == "getenv" and args:
            self.record(module, node, args[0], args[1] if len(args) > 1 else None)
        elif callee in _NAMED_READERS and args:
            index = _NAMED_READERS[callee]
            default = args[index] if len(args) > index else None
            reader = self._function(module, callee)
            if default is None and reader is not None:
                default = _param_default(reader, reader.args.args[index].arg)
            self.record(module, node, args[0], default)
        elif callee == _CONTEXT_READER and len(args) >= 2:
            default = (
                args[2]
                if len(args) > 2
                else next((k.value for k in node.keywords if k.arg == "default"), None)
            )
            for prefix in ("<CONTEXT>_", "STRANGLER_"):
                for suffix in self.names(module, args[1]) or []:
                    self.record(module, node, ast.Constant(prefix + suffix), default)

    def _function(self, module: _Module, name: str) -> ast.FunctionDef | None:
        """The module-level function ``name`` of ``module`` or of the module it came from."""
        found = self._function_and_module(module, name)
        return found[1] if found else None

    def _function_and_module(
        self, module: _Module, name: str
    ) -> tuple[_Module, ast.FunctionDef] | None:
        for node in module.tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == name:
                return module, node
            if (
                isinstance(node, ast.ImportFrom)
                and node.module in self.by_name
                and any((a.asname or a.name) == name for a in node.names)
            ):
                return self._function_and_module(self.by_name[node.module], name)
        return None

    def _class(self, module: _Module, name: str) -> tuple[_Module, ast.ClassDef] | None:
        for node in module.tree.body:
            if isinstance(node, ast.ClassDef) and node.name == name:
                return module, node
            if (
                isinstance(node, ast.ImportFrom)
                and node.module in self.by_name
                and any((a.asname or a.name) == name for a in node.names)
            ):
                return self._class(self.by_name[node.module], name)
        return None

    def _instance_field_default(self, module: _Module, expr: ast.Call) -> str | None:
        """``getattr(instance, "field")`` where ``instance = SomeClass()``: the field's default."""
        if not (
            _callee(expr) == "getattr"
            and len(expr.args) >= 2
            and isinstance(expr.args[0], ast.Name)
            and isinstance(expr.args[1], ast.Constant)
        ):
            return None
        for node in ast.walk(module.tree):
            if (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == expr.args[0].id for t in node.targets)
                and isinstance(node.value, ast.Call)
            ):
                found = self._class(module, _callee(node.value))
                if found is None:
                    continue
                home, owner = found
                for statement in owner.body:
                    if (
                        isinstance(statement, ast.AnnAssign)
                        and isinstance(statement.target, ast.Name)
                        and statement.target.id == expr.args[1].value
                    ):
                        return self.default(home, statement.value)
        return None

    def _reads_subscript(self, module: _Module, node: ast.AST) -> bool:
        """``os.environ[NAME]`` (read, not assigned) outside the reader helpers."""
        return (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and _receiver(node.value) in _ENV_RECEIVERS
            and not self._in_reader(module, node)
        )

    def _settings_models(self, module: _Module) -> None:
        """pydantic-settings models: every field, under each env prefix its sources use."""
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.ClassDef):
                continue
            if not any(_callee_name(base) == "BaseSettings" for base in node.bases):
                continue
            prefixes: list[str] = []
            for sub in ast.walk(node):
                if isinstance(sub, ast.Call) and _callee(sub) == "EnvSettingsSource":
                    for keyword in sub.keywords:
                        if keyword.arg == "env_prefix":
                            prefixes += self.names(module, keyword.value) or []
            prefixes = prefixes or [""]
            model = _import(module.name, node.name)
            for name, info in model.model_fields.items():
                default = info.default
                shown = "" if default in ("", None) else str(getattr(default, "value", default))
                for prefix in prefixes:
                    var = self.vars.setdefault(prefix + name.upper(), EnvVar(prefix + name.upper()))
                    var.defaults.add(repr(shown) if isinstance(default, str) and shown else shown)
                    var.sites.add(module.rel)
                    if info.description:
                        FIELD_DESCRIPTIONS.setdefault(prefix + name.upper(), info.description)


def _inside(module: _Module, node: ast.AST, scope: ast.AST) -> bool:
    current = module.parents.get(node)
    while current is not None:
        if current is scope:
            return True
        current = module.parents.get(current)
    return False


def _names_in(expr: ast.expr | None) -> set[str]:
    if expr is None:
        return set()
    return {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)}


def _has_param(function: ast.FunctionDef, name: str) -> bool:
    args = function.args
    return any(a.arg == name for a in args.posonlyargs + args.args + args.kwonlyargs)


def _param_default(function: ast.FunctionDef, name: str) -> ast.expr | None:
    args = function.args
    positional = [a.arg for a in args.posonlyargs + args.args]
    defaults: dict[str, ast.expr] = dict(
        zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True)
    )
    for arg, value in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        if value is not None:
            defaults[arg.arg] = value
    return defaults.get(name)


class _Substitute(ast.NodeTransformer):
    """Replaces names by the expressions a caller passed for them."""

    def __init__(self, bindings: dict[str, ast.expr | None]) -> None:
        self.bindings = bindings

    def visit_Name(self, node: ast.Name) -> ast.expr:
        bound = self.bindings.get(node.id)
        return bound if bound is not None else node


def _substitute(expr: ast.expr | None, bindings: dict[str, ast.expr | None]) -> ast.expr | None:
    if expr is None:
        return None
    replaced: ast.expr = _Substitute(bindings).visit(copy.deepcopy(expr))
    return replaced


def _callee(node: ast.Call) -> str:
    return _callee_name(node.func)


def _callee_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _receiver(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _import(module: str, name: str) -> Any:
    import importlib

    return getattr(importlib.import_module(module), name)


#: Descriptions of pydantic-settings fields, filled by the scan from ``Field(description=)``.
FIELD_DESCRIPTIONS: dict[str, str] = {}

#: Reads whose variable name is not a literal: the expression -> the variable it names.
DYNAMIC_READS = {
    "auth.identity_key_env": "STRANGLER_IDENTITY_KEY",
    "settings.identity_key_env": "STRANGLER_IDENTITY_KEY",
}


def env_vars(
    root: Path = ROOT, packages: Iterable[str] = PACKAGES, *, cli: bool = True
) -> tuple[dict[str, EnvVar], list[DynamicRead]]:
    """Every environment variable the packages read (by name), and the reads the scan
    could not name. Variables of CLI options (``envvar=``) are added from the CLI."""
    scanner = _Scanner(root, packages)
    scanner.scan()
    for command in cli_commands() if cli else []:
        for param in command.params:
            for name in param.envvar:
                var = scanner.vars.setdefault(name, EnvVar(name))
                var.defaults.add(f"`{param.default}`" if param.default else "")
                var.sites.add(f"`{command.path} {param.opts[0] if param.opts else param.name}`")
    for read in scanner.dynamic:
        documented = DYNAMIC_READS.get(read.expression)
        if documented:
            scanner.vars.setdefault(documented, EnvVar(documented)).sites.add(read.site)
    return scanner.vars, scanner.dynamic


def undocumented_reads(dynamic: Iterable[DynamicRead]) -> list[DynamicRead]:
    """Reads the scan could not name and :data:`DYNAMIC_READS` does not map."""
    return [read for read in dynamic if read.expression not in DYNAMIC_READS]


def describe(name: str) -> str:
    return DESCRIPTIONS.get(name) or FIELD_DESCRIPTIONS.get(name, "")


def environment_markdown(found: dict[str, EnvVar] | None = None) -> str:
    """``reference/environment.md`` (of ``found``, default :func:`env_vars`)."""
    if found is None:
        found, _ = env_vars()
    out = [
        "# Environment variables and settings",
        "",
        GENERATED_NOTE,
        "Every variable the packages read, found by scanning the code that reads the "
        "environment (`os.environ`, the settings helpers `env_number`/`context_env`, the "
        "services' pydantic settings, the CLI's `envvar=` options). `<CONTEXT>` is a "
        "context's name in upper case (`CATALOG`, `INVENTORY`, `PAYMENTS`): a service "
        "setting is read from `<CONTEXT>_<NAME>` first, then from `STRANGLER_<NAME>`. A "
        "default shown as *computed* is worked out at run time from the expression given; "
        "an empty default means unset (the feature is off, or the code falls back as the "
        "description says).",
        "",
        "| variable | default | description | read in |",
        "|---|---|---|---|",
    ]
    for name in sorted(found, key=_sort_key):
        var = found[name]
        sites = ", ".join(sorted(var.sites))
        out.append(
            f"| `{name}` | {_cell(var.default)} | {_cell(describe(name))} | {_cell(sites)} |"
        )
    out.append("")
    return "\n".join(out)


def _sort_key(name: str) -> tuple[int, str]:
    if name.startswith("STRANGLER_"):
        return (0, name)
    if name.startswith("<CONTEXT>_"):
        return (1, name)
    return (2, name)


#: What each variable does (a pydantic ``Field(description=...)`` next to the read also
#: counts). tests/docs/test_reference.py fails on a variable the code reads without one.
DESCRIPTIONS: dict[str, str] = {
    # -- the control plane, stores and processes --
    "STRANGLER_PLANS_DIR": "The deployment's plans folder, read by every command, service, relay and the reconciler (default `./plans`; `strangler plan init` fills it).",
    "STRANGLER_CONTROL_DB_URL": "The control-plane database: published phases, replicas, reconciler history, plan history, the shadow results when no other store is selected.",
    "STRANGLER_PG_URL": "PostgreSQL server the tests (and the replay plugin, the contract check) create their databases on.",
    "STRANGLER_REDIS_URL": "Redis: phase pub/sub, and the shadow results store unless another is selected.",
    "STRANGLER_BROKER_URL": "Celery broker of the relay, reconciler and saga workers (embedded default: kombu's SQLAlchemy transport on SQLite).",
    "CELERY_BROKER_URL": "The monolith's Celery broker; wins over `STRANGLER_BROKER_URL` for the monolith.",
    "STRANGLER_RESULT_BACKEND": "Celery result backend of the relay and reconciler workers.",
    "STRANGLER_RELAY_QUEUE": "Celery queue of the relay's retry tasks.",
    "STRANGLER_RECONCILE_QUEUE": "Celery queue of the reconciler's segment tasks.",
    "STRANGLER_RECONCILE_METRICS_PORT": "A reconciler worker serves `strangler_reconcile_*` metrics on this port when set.",
    "STRANGLER_ROUTES": "The route table `strangler plan advance/rollback/status` rewrite and read.",
    "STRANGLER_VAR_DIR": "Where `strangler demo` keeps its files (`<dir>/demo`).",
    "STRANGLER_LOG_DIR": "Where processes started by the control plane write their logs.",
    "STRANGLER_DEMO_PORT": "The demo's proxy port (default 8000).",
    "STRANGLER_PROXY_PORT": "The stack's proxy port (`strangler up`; default 8000).",
    "STRANGLER_MONOLITH_PORT": "The stack's and the demo's monolith port (default 8001).",
    "STRANGLER_<CONTEXT>_PORT": "The port of a context's service (first replica; replica i adds 10 x i) in `strangler service serve`, the stack and the demo, and where the monolith's port calls it by default. Unset: the plan's `port:`, else catalog 8101, inventory 8102, payments 8103, else a port in 8200-8999 derived from the context's name.",
    "STRANGLER_MONOLITH_SETTINGS": "The monolith's Django settings module (`strangler monolith serve|migrate|manage`, `strangler up`, the phase-replay topology); default `DJANGO_SETTINGS_MODULE`, else the example shop's `legacy_monolith.settings`.",
    "STRANGLER_MONOLITH_CELERY_APP": "The monolith's Celery app the stack runs as the saga worker (`celery -A APP worker -Q sagas -B`). Unset: `legacy_monolith.celery_app` with the shop's settings, none with any other; set empty: none.",
    "STRANGLER_MONOLITH_HEALTH_PATH": "The path the stack waits on (2xx) before the monolith counts as started (default `/healthz`); any view of a monolith of your own that answers without a login will do.",
    "PYTHONPATH": "Python's import path; the stack's children get `STRANGLER_PROJECT_PATH` in front of the inherited value.",
    "STRANGLER_PROJECT_PATH": "Your project's root folder(s), `os.pathsep`-separated: every `strangler` command puts them first on its import path and its children's `PYTHONPATH` (`strangler up` and the phase-replay topology too), so a service package (a plan's `service_module`) or a monolith settings module outside the toolkit imports.",
    "STRANGLER_REPLAY_BACKEND": "`embedded` runs the phase-replay topology on SQLite and kombu's SQLAlchemy transport instead of PostgreSQL and a private Redis.",
    "CI": "`true`: a test whose server (PostgreSQL, Redis, Chromium) is missing fails instead of skipping.",
    # -- the live phase and replicas --
    "STRANGLER_PHASE": "Pins the phase of every service and relay (`shared`, `dual_write`, `split`); unset, they follow the published phase.",
    "<CONTEXT>_PHASE": "Pins one context's phase (service, relay, the monolith's port); wins over `STRANGLER_PHASE`.",
    "STRANGLER_LIVE_PHASE": "`off`: no process follows the published phase (each serves the phase it starts in).",
    "STRANGLER_PHASE_POLL_INTERVAL": "How often a follower reads the published phase (seconds; default 0.05 on SQLite, 1.0 with a push channel).",
    "STRANGLER_REPLICA_HEARTBEAT": "Seconds between a replica's heartbeats in `strangler_replicas`.",
    "STRANGLER_REPLICA_SILENT_AFTER": "A replica without a heartbeat for this long (seconds) is silent: it stops an advance unless left out with `--force --reason`.",
    # -- dual-write relay --
    "STRANGLER_RELAY_MAX_ATTEMPTS": "Attempts before an event that fails to apply moves to `strangler_dead_letter`.",
    "STRANGLER_RELAY_BACKOFF_BASE": "First retry delay of a failed event (seconds, exponential).",
    "STRANGLER_RELAY_BACKOFF_MAX": "Longest retry delay of a failed event (seconds).",
    "STRANGLER_RELAY_STALE_AFTER": "An in-flight event untouched this long (seconds) is handed out again.",
    "STRANGLER_RELAY_BATCH_SIZE": "Events the relay applies per pass.",
    "STRANGLER_RELAY_POLL_INTERVAL": "How often the relay polls an outbox without a notification (seconds).",
    "STRANGLER_RELAY_PARTITIONS": "Relay workers per context, each owning a share of the keys.",
    "<CONTEXT>_RELAY_MAX_ATTEMPTS": "`STRANGLER_RELAY_MAX_ATTEMPTS` for one context.",
    "<CONTEXT>_RELAY_BACKOFF_BASE": "`STRANGLER_RELAY_BACKOFF_BASE` for one context.",
    "<CONTEXT>_RELAY_BACKOFF_MAX": "`STRANGLER_RELAY_BACKOFF_MAX` for one context.",
    "<CONTEXT>_RELAY_STALE_AFTER": "`STRANGLER_RELAY_STALE_AFTER` for one context.",
    "<CONTEXT>_RELAY_BATCH_SIZE": "`STRANGLER_RELAY_BATCH_SIZE` for one context.",
    "<CONTEXT>_RELAY_POLL_INTERVAL": "`STRANGLER_RELAY_POLL_INTERVAL` for one context.",
    "<CONTEXT>_RELAY_PARTITIONS": "`STRANGLER_RELAY_PARTITIONS` for one context.",
    # -- services --
    "<CONTEXT>_SQL_ECHO": "Log the service's SQL statements.",
    "STRANGLER_SQL_ECHO": "Log every service's SQL statements.",
    # -- the monolith's ports and sagas --
    "<CONTEXT>_SERVICE_URL": "The service the monolith's port calls once the context is split (comma-separated replicas; a refused connection fails over to the next).",
    "STRANGLER_SERVICE_URL": "`<CONTEXT>_SERVICE_URL` for every context.",
    "STRANGLER_PORT_TIMEOUT": "Timeout of a port call to a service (seconds; default 5).",
    "STRANGLER_PORT_CONNECT_TIMEOUT": "Connect timeout of a port call (seconds; default 2).",
    "STRANGLER_PORT_USER": "The staff account the monolith calls services as (default `strangler-saga`, created on first use with an unusable password).",
    "STRANGLER_PORT_HOLD_SECONDS": "How long a port call waits while its context is fenced (seconds).",
    "STRANGLER_SAGA_MAX_ATTEMPTS": "Attempts of a saga step before a placement compensates (`gave_up:<step>`) or a forward-only saga is dead-lettered.",
    "STRANGLER_SAGA_BACKOFF_BASE": "First retry delay of a saga step (seconds, doubling).",
    "STRANGLER_SAGA_BACKOFF_MAX": "Longest retry delay of a saga step (seconds).",
    "STRANGLER_SAGA_LEASE_SECONDS": "How long a run holds a saga; an expired lease is resumed by the sweeper.",
    "STRANGLER_SAGA_SWEEP_SECONDS": "How often the sweeper on beat hands due retries and expired leases to a worker (seconds).",
    "STRANGLER_SAGA_QUEUE": "Celery queue of the monolith's saga tasks (default `sagas`).",
    # -- the proxy and shadowing --
    "STRANGLER_ADMIN_TOKEN": "Bearer token of the proxy's admin API and the dashboard; both are off without it.",
    "STRANGLER_IDENTITY_KEY": "HMAC key of the signed `X-Strangler-Identity` header (the proxy signs, services verify, the monolith's ports sign); the route table's `auth.identity_key_env` names it.",
    "STRANGLER_CANARY_KEY": "Secret key of the canary hash (without it a client could compute its side; a development key is used, with a warning).",
    "STRANGLER_MITM_PYTHON": "The interpreter with mitmproxy installed, for flow files (default `.venv-mitm/bin/python`).",
    "STRANGLER_RECORD_FILE": "Where `record:` routes write their flow files (`{pid}`: each worker's process id).",
    "STRANGLER_SHADOW_STORE_URL": "The shadow results store (`redis://...` or a SQLAlchemy URL); wins over every other selection.",
    "STRANGLER_SHADOW_STORE": "`sql` or `redis`: which shadow results store when no URL is given.",
    "STRANGLER_SHADOW_REDIS_URL": "Redis of the shadow results (else `STRANGLER_REDIS_URL`).",
    "STRANGLER_SHADOW_PREFIX": "Key prefix (Redis) or namespace (SQL) of the shadow results.",
    "STRANGLER_SHADOW_QUEUE": "Mirror queue size; a copy that finds it full is dropped and counted.",
    "STRANGLER_SHADOW_CONCURRENCY": "Mirror workers sending copies to candidates.",
    "STRANGLER_SHADOW_TIMEOUT": "Timeout of a mirrored request (seconds).",
    "STRANGLER_SHADOW_MAX_REQUEST_BYTES": "Request bodies buffered for mirroring up to this size.",
    "STRANGLER_SHADOW_MAX_RESPONSE_BYTES": "Primary responses kept for comparison up to this size.",
    "STRANGLER_SHADOW_MODE": "`process` (a mirror sidecar per proxy worker) or `inline` (the engine in the proxy's event loop).",
    "STRANGLER_SHADOW_SCHED": "The sidecar's scheduling class: `idle` (SCHED_IDLE) or `normal`.",
    "STRANGLER_SHADOW_NICE": "Niceness added to the mirror sidecar.",
    "STRANGLER_SHADOW_BUFFER_BYTES": "The proxy's buffer of copies for the sidecar (plus a socket buffer of the same size); full: dropped and counted.",
    "STRANGLER_SHADOW_DRAIN": "How long a sidecar drains its queue when the proxy goes (seconds).",
    "STRANGLER_SHADOW_ADAPTIVE": "`0` turns adaptive shadow shedding off (see shadow shedding).",
    "STRANGLER_SHADOW_INTERVAL": "Shadow shedding: how often the proxy's event-loop load is measured (seconds).",
    "STRANGLER_SHADOW_LOAD_HIGH": "Shadow shedding: a smoothed loop load above this multiplies the mirrored share by `STRANGLER_SHADOW_RATE_BACKOFF`.",
    "STRANGLER_SHADOW_LOAD_LOW": "Shadow shedding: a smoothed loop load below this for `STRANGLER_SHADOW_RECOVER_AFTER` seconds grows the mirrored share.",
    "STRANGLER_SHADOW_MIN_IN_FLIGHT": "Shadow shedding: the share backs off under high load only while more than this many requests are in flight (smoothed).",
    "STRANGLER_SHADOW_SMOOTHING": "Shadow shedding: weight of the newest load sample in the moving average.",
    "STRANGLER_SHADOW_RATE_BACKOFF": "Shadow shedding: factor the mirrored share is multiplied by under high load.",
    "STRANGLER_SHADOW_RATE_STEP": "Shadow shedding: how much the mirrored share grows per sample once the load is low (up to 1).",
    "STRANGLER_SHADOW_RATE_FLOOR": "Shadow shedding: below this share nothing is mirrored.",
    "STRANGLER_SHADOW_RECOVER_AFTER": "Shadow shedding: seconds of low load before the mirrored share grows again.",
    # -- the legacy monolith (Django) --
    "DATABASE_URL": "The monolith's database (`sqlite:///...` or `postgresql://...`); `strangler saga` also falls back to it.",
    "SECRET_KEY": "Django's secret key; the development default is refused unless `DEBUG=true`.",
    "DEBUG": "Django's debug mode (`1/true/yes/on`).",
    "ALLOWED_HOSTS": "Django's allowed hosts (comma-separated).",
    "LOG_LEVEL": "The monolith's log level.",
    "DB_CONN_MAX_AGE": "Persistent database connections (seconds; only for WSGI servers, `--server gunicorn` sets 60).",
    "PASSWORD_HASHERS": "Django password hashers (comma-separated; the tests use MD5 for speed).",
    "MONOLITH_PAYMENTS_FAIL": "`true`: the fake payment provider declines everything.",
    "MONOLITH_ACCESS_LOG": "`false` turns the monolith's JSON access log off.",
    "MONOLITH_ORDER_WAIT_SECONDS": "How long an order request waits for its saga before answering 202 (seconds).",
    "DJANGO_SETTINGS_MODULE": "Django settings of the monolith (set by its entry points when unset).",
}

# ----------------------------------------------------------------------- JSON Schemas


def _schema_type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return f"[{name}](#{name.lower()})"
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return " or ".join(_schema_type(s) for s in schema[key])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_schema_type(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of {_schema_type(schema['additionalProperties'])}"
    if kind == "object" and schema.get("patternProperties"):
        (pattern, value), *_ = schema["patternProperties"].items()
        return f"map of {_schema_type(value)} (names matching `{pattern}`)"
    if isinstance(kind, list):
        return " or ".join(kind)
    constraints = [
        f"{label} `{schema[key]}`" if key == "pattern" else f"{label} {schema[key]}"
        for key, label in (
            ("minimum", ">="),
            ("exclusiveMinimum", ">"),
            ("maximum", "<="),
            ("exclusiveMaximum", "<"),
            ("minLength", "length >="),
            ("maxLength", "length <="),
            ("pattern", "matching"),
        )
        if key in schema
    ]
    return str(kind) + (f" ({', '.join(constraints)})" if constraints else "")


def _object_table(name: str, schema: dict[str, Any], level: int) -> list[str]:
    out = [f"{'#' * level} {name} {{#{name.lower()}}}", ""]
    if schema.get("description"):
        out += [" ".join(schema["description"].split()), ""]
    properties = schema.get("properties", {})
    if not properties:
        return [*out, f"Type: {_schema_type(schema)}", ""]
    required = set(schema.get("required", []))
    out += ["| field | type | required | default | description |", "|---|---|---|---|---|"]
    for field_name, prop in properties.items():
        default = f"`{json.dumps(prop['default'])}`" if "default" in prop else ""
        out.append(
            f"| `{field_name}` | {_cell(_schema_type(prop))} | {'yes' if field_name in required else ''} "
            f"| {_cell(default)} | {_cell(' '.join(prop.get('description', '').split()))} |"
        )
    out.append("")
    return out


def schema_markdown(title: str, intro: str, schema: dict[str, Any]) -> str:
    """A page of one JSON Schema: the root object, then every definition."""
    root_name = schema.get("title", "Root")
    out = [f"# {title}", "", GENERATED_NOTE, intro, ""]
    out += _object_table(root_name, schema, 2)
    for name, definition in sorted(schema.get("$defs", {}).items()):
        out += _object_table(name, definition, 2)
    return "\n".join(out)


def route_table_schema() -> dict[str, Any]:
    from strangler_proxy.routetable.model import RouteTable

    return RouteTable.model_json_schema()


def plan_schema() -> dict[str, Any]:
    from migration_plans.core.plan import Plan

    return Plan.model_json_schema()


def route_table_markdown() -> str:
    return schema_markdown(
        "Route table file",
        "The YAML file the proxy serves (`strangler proxy serve --routes FILE`), from the JSON "
        "Schema of `strangler_proxy.routetable.model.RouteTable` (`strangler routes schema` "
        "prints the same schema for editors). The example is "
        "`strangler_proxy/examples/routes.yaml`; what the fields do is explained in "
        "[the routing proxy](../explanation/routing-proxy.md).",
        route_table_schema(),
    )


def plan_markdown() -> str:
    return schema_markdown(
        "Plan file",
        "One YAML file per bounded context in the plans folder (`STRANGLER_PLANS_DIR`), from "
        "the JSON Schema of `migration_plans.core.plan.Plan` (`strangler plan schema` prints "
        "the same schema). The shipped templates are `migration_plans/templates/*.yaml`; "
        "how a plan drives a cut-over: [cut a context over](../how-to/cut-over.md).",
        plan_schema(),
    )


# ---------------------------------------------------------------------------- metrics

_METRIC_TYPES = {
    "Counter": "counter",
    "Gauge": "gauge",
    "Histogram": "histogram",
    "Summary": "summary",
    "Info": "info",
    "Enum": "enum",
}
_PROCESS = {
    "legacy_monolith": "monolith (`/metrics`)",
    "strangler_proxy": "proxy (admin API `metrics`)",
    "extracted_services": "each service (`/metrics`)",
    "dualwrite": "relay (`strangler dualwrite relay --metrics-port`)",
    "reconciler": "reconciler worker (`STRANGLER_RECONCILE_METRICS_PORT`)",
    "migration_plans": "control plane",
}


@dataclass(frozen=True)
class Metric:
    name: str
    type: str
    help: str
    labels: tuple[str, ...]
    process: str
    module: str


def metrics() -> list[Metric]:
    """Every Prometheus metric constructed in the packages (exposition names: a counter
    gets ``_total``)."""
    found = []
    for module in _modules():
        aliases = {}
        for node in ast.walk(module.tree):
            if isinstance(node, ast.ImportFrom) and node.module == "prometheus_client":
                for alias in node.names:
                    if alias.name in _METRIC_TYPES:
                        aliases[alias.asname or alias.name] = _METRIC_TYPES[alias.name]
        if not aliases:
            continue
        local: dict[str, str] = {}
        for node in ast.walk(module.tree):
            if (
                (
                    isinstance(node, ast.Assign)
                    and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name)
                )
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                local[node.targets[0].id] = node.value.value
        for node in ast.walk(module.tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in aliases
            ):
                continue
            if len(node.args) < 2:
                continue
            name = _string(node.args[0], local)
            documentation = _string(node.args[1], local)
            if name is None:
                continue
            kind = aliases[node.func.id]
            labels: tuple[str, ...] = ()
            label_arg = (
                node.args[2]
                if len(node.args) > 2
                else next((k.value for k in node.keywords if k.arg == "labelnames"), None)
            )
            if isinstance(label_arg, ast.List | ast.Tuple):
                labels = tuple(str(e.value) for e in label_arg.elts if isinstance(e, ast.Constant))
            exposed = name + "_total" if kind == "counter" and not name.endswith("_total") else name
            package = module.rel.split("/", 1)[0]
            found.append(
                Metric(exposed, kind, documentation or "", labels, _PROCESS[package], module.rel)
            )
    return sorted(found, key=lambda m: (m.process, m.name))


def _string(expr: ast.expr, local: dict[str, str]) -> str | None:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return expr.value
    if isinstance(expr, ast.Name):
        return local.get(expr.id)
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        left, right = _string(expr.left, local), _string(expr.right, local)
        if left is not None and right is not None:
            return left + right
    return None


def metrics_markdown(found: list[Metric] | None = None) -> str:
    """``reference/metrics.md`` (of ``found``, default :func:`metrics`)."""
    out = [
        "# Metrics",
        "",
        GENERATED_NOTE,
        "Every Prometheus metric the processes define (prometheus_client), by the process "
        "that serves it. A counter is exposed with the `_total` suffix shown here; a "
        "histogram adds `_bucket`, `_sum` and `_count`.",
        "",
        "| metric | type | labels | help | served by | defined in |",
        "|---|---|---|---|---|---|",
    ]
    for m in metrics() if found is None else found:
        labels = ", ".join(f"`{label}`" for label in m.labels)
        out.append(
            f"| `{m.name}` | {m.type} | {labels} | {_cell(m.help)} | {m.process} | `{m.module}` |"
        )
    out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------------ mkdocs hook

PAGES: dict[str, Callable[[], str]] = {
    "reference/cli.md": cli_markdown,
    "reference/environment.md": environment_markdown,
    "reference/route-table.md": route_table_markdown,
    "reference/plan-file.md": plan_markdown,
    "reference/metrics.md": metrics_markdown,
}


def on_files(files: Any, config: Any) -> Any:
    """mkdocs hook: add the generated reference pages to the build."""
    from mkdocs.structure.files import File

    for path, render in PAGES.items():
        existing = files.get_file_from_path(path)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, path, content=render()))
    return files


_SPHINX_ROLE = re.compile(r":(?:class|meth|func|data|mod|attr|exc|obj):(<code>|`)")


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """mkdocs hook: docstrings use Sphinx roles (``:class:`X```) and ``::`` before an
    example; mkdocstrings renders them verbatim, so drop the role and the extra colon."""
    html = _SPHINX_ROLE.sub(r"\1", html)
    return html.replace("::</p>", ":</p>")
