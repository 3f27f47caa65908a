"""Edit plan files in place, keeping every comment and the user's layout byte for byte.

set_phase(Path("migration_plans/templates/catalog.yaml"), Phase.DUAL_WRITE)
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from migration_plans.core.plan import Phase, Plan, load_plan
from migration_plans.core.yamlfile import ConfigError, ConfigIssue, SourceDocument

_PHASE_LINE = re.compile(r"^(phase:\s*)(\S+)(.*)$")


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
    """Rewrite only the value of the top-level ``phase:`` line; return the re-validated plan."""
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
