"""The contract check's result: counts, and the first examples as curl commands.

print(report.render_table())      # or json.dumps(report.as_json())
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from migration_plans.control.contract.cases import Case

EXAMPLES_KEPT = 10
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with control characters (terminal escapes, bidi overrides) shown as ``\\xNN``:
    answers are the services' data, a terminal must not interpret them."""
    return _CONTROL.sub(lambda found: _escape(ord(found.group())), text)


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


@dataclass(frozen=True)
class Finding:
    """A server error or an undeclared difference, with the case that shows it."""

    case: Case
    what: str
    monolith_status: int
    service_status: int

    def as_json(self) -> dict[str, Any]:
        return {
            "operation": self.case.operation,
            "kind": self.case.kind,
            "note": self.case.note,
            "what": self.what,
            "monolith_status": self.monolith_status,
            "service_status": self.service_status,
            "curl": self.case.curl(),
        }


@dataclass
class ContractReport:
    """Counts per context; ``server_errors`` and ``differences`` must be 0 to pass."""

    context: str
    seed: int
    examples: int
    operations: int
    cases: int
    server_errors: int = 0
    differences: int = 0
    allowed: int = 0
    undocumented: int = 0
    server_error_examples: list[Finding] = field(default_factory=list)
    difference_examples: list[Finding] = field(default_factory=list)
    undocumented_examples: list[Finding] = field(default_factory=list)
    by_operation: dict[str, list[int]] = field(default_factory=dict)
    unserved: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.server_errors == 0 and self.differences == 0

    def _count(self, finding: Finding, index: int) -> None:
        counts = self.by_operation.setdefault(finding.case.operation, [0, 0])
        counts[index] += 1

    def add_server_error(self, finding: Finding) -> None:
        self.server_errors += 1
        self._count(finding, 0)
        if len(self.server_error_examples) < EXAMPLES_KEPT:
            self.server_error_examples.append(finding)

    def add_undocumented(self, finding: Finding) -> None:
        """The monolith answered a status its OpenAPI document does not list (not a failure)."""
        self.undocumented += 1
        if len(self.undocumented_examples) < EXAMPLES_KEPT:
            self.undocumented_examples.append(finding)

    def add_difference(self, finding: Finding) -> None:
        self.differences += 1
        self._count(finding, 1)
        if len(self.difference_examples) < EXAMPLES_KEPT:
            self.difference_examples.append(finding)

    def as_json(self) -> dict[str, Any]:
        return {
            "context": self.context,
            "seed": self.seed,
            "examples": self.examples,
            "operations": self.operations,
            "cases": self.cases,
            "server_errors": self.server_errors,
            "differences": self.differences,
            "allowed": self.allowed,
            "undocumented": self.undocumented,
            "unserved": self.unserved,
            "ok": self.ok,
            "by_operation": {
                op: {"server_errors": c[0], "differences": c[1]}
                for op, c in self.by_operation.items()
            },
            "server_error_examples": [f.as_json() for f in self.server_error_examples],
            "difference_examples": [f.as_json() for f in self.difference_examples],
            "undocumented_examples": [f.as_json() for f in self.undocumented_examples],
        }

    def render(self, console: Console) -> None:
        """A summary table, then each example with its curl command."""
        table = Table(title=f"contract check: {self.context} (seed {self.seed})")
        columns = ("operations", "cases", "server errors", "differences", "allowed", "undocumented")
        for column in columns:
            table.add_column(column, justify="right")
        table.add_row(
            str(self.operations),
            str(self.cases),
            str(self.server_errors),
            str(self.differences),
            str(self.allowed),
            str(self.undocumented),
        )
        console.print(table)
        if self.unserved:
            console.print(
                "not compared (the monolith does not serve them): " + ", ".join(self.unserved),
                markup=False,
                highlight=False,
            )
        for title, findings in (
            ("server errors", self.server_error_examples),
            ("undeclared differences", self.difference_examples),
            ("statuses the monolith's OpenAPI document does not list", self.undocumented_examples),
        ):
            if findings:
                console.print(f"first {title}:", style="bold")
            for finding in findings:
                console.print(
                    printable(
                        f"- {finding.case.operation} [{finding.case.kind}"
                        f"{': ' + finding.case.note if finding.case.note else ''}] "
                        f"{finding.monolith_status}/{finding.service_status}: {finding.what}"
                    ),
                    markup=False,
                    highlight=False,
                )
                console.print(
                    f"  {printable(finding.case.curl())}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
