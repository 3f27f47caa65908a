"""Where a deployment keeps its plans, and one context's settings read once from there.

The runtime reads ONE plans folder: ``STRANGLER_PLANS_DIR`` (default ``./plans``). The
plans shipped in this package are templates (:data:`TEMPLATES_DIR`); ``strangler plan
init`` copies them into a plans folder, and nothing writes inside the package.

    settings = ContextSettings.from_env("catalog")
    settings.plan.phase, settings.mapping.table("products"), settings.service_url
"""

from __future__ import annotations

import os
import shutil
import sys
import zlib
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from migration_plans.core.mapping import ContextMapping
from migration_plans.core.phase import Phase
from migration_plans.core.plan import Plan, load_plan
from migration_plans.core.yamlfile import ConfigError, ConfigIssue

__all__ = [
    "DEFAULT_PLANS_DIR",
    "DEFAULT_SERVICE_PORTS",
    "DERIVED_PORTS",
    "PLANS_DIR_ENV",
    "PROJECT_PATH_ENV",
    "SHIPPED_CONTEXTS",
    "TEMPLATES_DIR",
    "BadSetting",
    "ContextSettings",
    "UnknownContext",
    "context_env",
    "context_port",
    "copy_templates",
    "env_number",
    "known_contexts",
    "mapping_for",
    "plan_contexts",
    "plan_for",
    "plans_dir",
    "project_path",
    "service_module_for",
    "service_port",
    "use_project_path",
]

PLANS_DIR_ENV = "STRANGLER_PLANS_DIR"
DEFAULT_PLANS_DIR = Path("plans")
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
#: Where each shipped example service listens by default (replica i: + 10 x i).
DEFAULT_SERVICE_PORTS = {"catalog": 8101, "inventory": 8102, "payments": 8103}
#: The example shop's contexts, whose packages ship as ``extracted_services.<context>``:
#: known to ``strangler service`` even with no plan (the other contexts need one).
SHIPPED_CONTEXTS = tuple(DEFAULT_SERVICE_PORTS)
#: Where a context with neither a plan ``port:`` nor a shipped default listens: a port
#: in this range derived from its name (stable across runs and machines).
DERIVED_PORTS = range(8200, 9000)
PROJECT_PATH_ENV = "STRANGLER_PROJECT_PATH"
"""The user's project root(s) (``os.pathsep``-separated): the stack puts them on its
children's ``PYTHONPATH`` so a service package or monolith outside this toolkit imports."""


def plans_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The deployment's plans folder: ``STRANGLER_PLANS_DIR``, else ``./plans``."""
    environ = os.environ if environ is None else environ
    configured = environ.get(PLANS_DIR_ENV, "").strip()
    return Path(configured) if configured else DEFAULT_PLANS_DIR


def plan_path(context: str, directory: Path | None = None) -> Path:
    """The plan file of ``context`` in ``directory`` (default: :func:`plans_dir`)."""
    return (directory or plans_dir()) / f"{context}.yaml"


def plan_for(context: str, directory: Path | None = None) -> Plan:
    """The plan of ``context``; :class:`ConfigError` naming the file when it is missing."""
    path = plan_path(context, directory)
    if not path.exists():
        hint = f"run 'strangler plan init --plans-dir {path.parent}' or set {PLANS_DIR_ENV}"
        raise ConfigError([ConfigIssue(str(path), None, "", f"no plan for {context!r} ({hint})")])
    return load_plan(path)


def plan_contexts(directory: Path | None = None) -> tuple[str, ...]:
    """The contexts with a plan file in ``directory`` (default: :func:`plans_dir`), sorted.

    Only the file names are read (``<context>.yaml``): nothing is parsed here.
    """
    folder = directory or plans_dir()
    return tuple(sorted(path.stem for path in folder.glob("*.yaml") if path.is_file()))


def known_contexts(directory: Path | None = None) -> tuple[str, ...]:
    """The contexts the runtime can serve: those with a plan, plus the shipped ones."""
    return tuple(sorted({*plan_contexts(directory), *SHIPPED_CONTEXTS}))


class UnknownContext(LookupError):
    """A context with no plan in the plans folder (the message lists the known ones)."""

    def __init__(self, context: str, directory: Path) -> None:
        self.context = context
        self.known = known_contexts(directory)
        super().__init__(
            f"unknown context {context!r}: no plan {plan_path(context, directory)} "
            f"({PLANS_DIR_ENV}); known contexts: {', '.join(self.known)}"
        )


def service_module_for(context: str, directory: Path | None = None) -> str:
    """The Python package of ``context``'s service: its plan's ``service_module``.

    A shipped context with no plan is ``extracted_services.<context>``; any other
    context without a plan raises :class:`UnknownContext`.
    """
    folder = directory or plans_dir()
    if plan_path(context, folder).exists():
        return plan_for(context, folder).service_module
    if context in SHIPPED_CONTEXTS:
        return f"extracted_services.{context}"
    raise UnknownContext(context, folder)


def derived_port(context: str) -> int:
    """A stable port in :data:`DERIVED_PORTS` for ``context`` (CRC-32 of its name)."""
    return DERIVED_PORTS.start + zlib.crc32(context.encode()) % len(DERIVED_PORTS)


def service_port(
    context: str, plan_port: int | None = None, environ: Mapping[str, str] | None = None
) -> int:
    """Where ``context``'s service (first replica) listens.

    ``STRANGLER_<CONTEXT>_PORT``, else the plan's ``port:``, else the shipped default
    (:data:`DEFAULT_SERVICE_PORTS`), else :func:`derived_port`. A variable that is not a
    port in 1024-65535 raises :class:`BadSetting`.
    """
    configured = env_number(
        f"STRANGLER_{context.upper()}_PORT", 0, low=1024, high=65535, environ=environ
    )
    if configured:
        if configured != int(configured):
            raise BadSetting(f"STRANGLER_{context.upper()}_PORT={configured:g} is not a port")
        return int(configured)
    if plan_port is not None:
        return plan_port
    return DEFAULT_SERVICE_PORTS.get(context) or derived_port(context)


def context_port(
    context: str, directory: Path | None = None, environ: Mapping[str, str] | None = None
) -> int:
    """:func:`service_port` of ``context`` with its plan's ``port:`` (when it has a plan in
    ``directory``, default :func:`plans_dir`)."""
    environ = os.environ if environ is None else environ
    folder = directory or plans_dir(environ)
    plan_port = plan_for(context, folder).port if plan_path(context, folder).exists() else None
    return service_port(context, plan_port, environ)


def project_path(environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """The folders of ``STRANGLER_PROJECT_PATH`` (absolute), in order; none when unset."""
    environ = os.environ if environ is None else environ
    raw = environ.get(PROJECT_PATH_ENV, "")
    return tuple(Path(part).resolve() for part in raw.split(os.pathsep) if part.strip())


def use_project_path(environ: MutableMapping[str, str] | None = None) -> tuple[Path, ...]:
    """Put the ``STRANGLER_PROJECT_PATH`` folders in front of ``sys.path`` and of
    ``PYTHONPATH`` in ``environ`` (default ``os.environ``), for this process and the ones
    it starts (a server's workers); the folders, none when unset."""
    environ = os.environ if environ is None else environ
    folders = project_path(environ)
    for folder in reversed(folders):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    inherited = [part for part in environ.get("PYTHONPATH", "").split(os.pathsep) if part]
    missing = [str(folder) for folder in folders if str(folder) not in inherited]
    if missing:
        environ["PYTHONPATH"] = os.pathsep.join([*missing, *inherited])
    return folders


def mapping_for(context: str, directory: Path | None = None) -> ContextMapping:
    """The field mapping of ``context``, from the deployment's plans folder."""
    return plan_for(context, directory).mapping


def copy_templates(target: Path, *, overwrite: bool = False) -> list[Path]:
    """Copy the shipped plan templates into ``target``; existing plans are kept unless asked."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for template in sorted(TEMPLATES_DIR.glob("*.yaml")):
        destination = target / template.name
        if destination.exists() and not overwrite:
            continue
        shutil.copyfile(template, destination)
        written.append(destination)
    return written


def context_env(
    context: str, name: str, default: str = "", environ: Mapping[str, str] | None = None
) -> str:
    """One setting of ``context``: ``<CONTEXT>_<NAME>``, else ``STRANGLER_<NAME>``, else ``default``.

    context_env("catalog", "RELAY_MAX_ATTEMPTS", "8")
    """
    environ = os.environ if environ is None else environ
    for key in (f"{context.upper()}_{name}", f"STRANGLER_{name}"):
        value = environ.get(key, "").strip()
        if value:
            return value
    return default


class BadSetting(ValueError):
    """An environment variable holds a value that cannot be used (the message names it)."""


def env_number(
    name: str,
    default: float,
    *,
    low: float,
    high: float,
    environ: Mapping[str, str] | None = None,
) -> float:
    """The number in environment variable ``name`` (``default`` when unset or blank),
    refused with :class:`BadSetting` when it is not a number in ``[low, high]``.

    env_number("STRANGLER_SAGA_LEASE_SECONDS", 30, low=1, high=3600)
    """
    environ = os.environ if environ is None else environ
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadSetting(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise BadSetting(f"{name}={raw} is outside [{low:g}, {high:g}]")
    return value


@dataclass(frozen=True)
class ContextSettings:
    """One context's plan, mapping, database URLs and phase, resolved once.

    The phase and reverse sync come from the plan; ``<CONTEXT>_PHASE`` /
    ``STRANGLER_PHASE`` (and ``..._REVERSE_SYNC``) pin them for a test or an operator.
    """

    context: str
    plans_dir: Path
    monolith_url: str
    service_url: str
    phase_override: Phase | None = None
    reverse_sync_override: bool | None = None

    @classmethod
    def from_env(cls, context: str, environ: Mapping[str, str] | None = None) -> ContextSettings:
        environ = os.environ if environ is None else environ
        phase = context_env(context, "PHASE", environ=environ)
        reverse = context_env(context, "REVERSE_SYNC", environ=environ).lower()
        return cls(
            context=context,
            plans_dir=plans_dir(environ),
            monolith_url=context_env(
                context, "MONOLITH_DATABASE_URL", "sqlite:///var/monolith.sqlite3", environ
            ),
            service_url=environ.get(f"{context.upper()}_DATABASE_URL", "").strip()
            or f"sqlite:///var/{context}.sqlite3",
            phase_override=Phase(phase) if phase else None,
            reverse_sync_override=reverse in {"1", "true", "yes", "on"} if reverse else None,
        )

    @cached_property
    def plan(self) -> Plan:
        return plan_for(self.context, self.plans_dir)

    @property
    def mapping(self) -> ContextMapping:
        return self.plan.mapping

    @property
    def phase(self) -> Phase:
        return self.phase_override or self.plan.phase

    @property
    def reverse_sync(self) -> bool:
        if self.reverse_sync_override is not None:
            return self.reverse_sync_override
        return self.plan.reverse_sync
