"""The deployment's plan files: read them all, and edit one in place keeping its layout.

    written, kept = init_plans(Path("plans"))  # the shipped templates, copied
    plans = read_plans(plans_dir())          # PlansMissing names the folder when empty
    set_phase(Path("plans/catalog.yaml"), Phase.DUAL_WRITE)

Only the deployment's copies are ever written: a path inside the installed package (the
shipped templates) is refused.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from migration_plans.control.exceptions import PlansMissing, WriteInsidePackage
from migration_plans.core.phase import Phase
from migration_plans.core.plan import Plan, load_plan, load_plans
from migration_plans.core.settings import TEMPLATES_DIR, copy_templates, plans_dir
from migration_plans.core.yamlfile import ConfigError, ConfigIssue, SourceDocument

PACKAGE_DIR = TEMPLATES_DIR.parent
"""The installed ``migration_plans`` package: nothing at run time writes under it."""

_PHASE_LINE = re.compile(r"^(phase:\s*)(\S+)(.*)$")


def read_plans(directory: Path) -> dict[str, Plan]:
    """Every plan in ``directory`` by context; :class:`PlansMissing` when there is none."""
    plans = load_plans(directory) if directory.is_dir() else {}
    if not plans:
        raise PlansMissing(directory)
    return plans


def inside_package(path: Path) -> bool:
    """Whether ``path`` lies in the installed package (where the templates are)."""
    return path.resolve().is_relative_to(PACKAGE_DIR)


def init_plans(
    directory: Path | None = None, *, overwrite: bool = False
) -> tuple[list[Path], list[Path]]:
    """Copy the shipped templates into ``directory`` (default :func:`plans_dir`).

    Returns ``(written, kept)``: plans already there are kept unless ``overwrite``.
    :class:`WriteInsidePackage` when ``directory`` is inside the installed package.
    """
    directory = directory or plans_dir()
    if inside_package(directory):
        raise WriteInsidePackage(directory)
    written = copy_templates(directory, overwrite=overwrite)
    names = sorted(template.name for template in TEMPLATES_DIR.glob("*.yaml"))
    kept = [directory / name for name in names if directory / name not in written]
    return written, kept


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (readers see the old or the new file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def set_phase(path: Path, phase: Phase) -> Plan:
    """Rewrite only the value of the top-level ``phase:`` line; return the re-validated plan.

    :class:`WriteInsidePackage` when ``path`` is a shipped template.
    """
    if inside_package(path):
        raise WriteInsidePackage(path)
    document = SourceDocument.read(path)
    line = document.line_of(("phase",))
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    match = _PHASE_LINE.match(lines[line - 1]) if line is not None else None
    if line is None or match is None:
        raise ConfigError([ConfigIssue(str(path), line, "phase", "no top-level 'phase:' line")])
    ending = "\n" if lines[line - 1].endswith("\n") else ""
    lines[line - 1] = f"{match.group(1)}{phase.value}{match.group(3)}{ending}"
    atomic_write(path, "".join(lines))
    return load_plan(path)
