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
from collections.abc import Mapping
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
    "PLANS_DIR_ENV",
    "TEMPLATES_DIR",
    "BadSetting",
    "ContextSettings",
    "context_env",
    "copy_templates",
    "env_number",
    "mapping_for",
    "plan_for",
    "plans_dir",
]

PLANS_DIR_ENV = "STRANGLER_PLANS_DIR"
DEFAULT_PLANS_DIR = Path("plans")
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
#: Where each extracted service listens by default (replica i: + 10 x i).
DEFAULT_SERVICE_PORTS = {"catalog": 8101, "inventory": 8102, "payments": 8103}


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
