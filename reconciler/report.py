"""The reconcile report: per table counts, divergent keys by class, field diffs, hints.

Built by :mod:`reconciler.runner`, stored by :mod:`reconciler.history`, rendered by
:mod:`reconciler.render` (terminal table, JSON, self-contained HTML).

    report.verdict            # "clean" | "divergent" | "error"
    report.limited(100)       # the same report listing at most 100 keys per table
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from reconciler.diff import Divergence, DivergenceKind


class Verdict(StrEnum):
    CLEAN = "clean"
    DIVERGENT = "divergent"
    ERROR = "error"


class RunKind(StrEnum):
    FULL = "full"  # every row, by checksums
    INCREMENTAL = "incremental"  # the keys with outbox events since the last clean run


class TableReport(BaseModel):
    """One table pair's outcome.

    ``keys_checked`` over the larger side's rows is the ``coverage`` (1.0 for a full
    run); ``watermark_from``/``watermark_to`` are the outbox ids per side the run's
    events lay between (``watermark_to`` becomes the table's watermark when the run is
    clean and stored).
    """

    name: str
    monolith_table: str
    service_table: str
    kind: RunKind = RunKind.FULL
    keys_checked: int = 0
    coverage: float = 0.0
    watermark_from: dict[str, int] = {}
    watermark_to: dict[str, int] = {}
    verdict: Verdict = Verdict.CLEAN
    monolith_rows: int = 0
    service_rows: int = 0
    checksummed_rows: int = 0
    segments: int = 0
    buckets: int = 0
    mismatched_buckets: int = 0
    rows_fetched: int = 0
    missing_in_service: int = 0
    missing_in_monolith: int = 0
    differing: int = 0
    in_flight: int = 0
    resolved_on_recheck: int = 0
    field_totals: dict[str, int] = {}
    divergences: list[Divergence] = []
    listed: int = 0
    hints: list[str] = []
    notes: list[str] = []
    seconds: float = 0.0
    error: str | None = None

    @property
    def divergent(self) -> int:
        """Rows that disagree (in-flight rows excluded)."""
        return self.missing_in_service + self.missing_in_monolith + self.differing

    def tally(self) -> None:
        """Recount the totals from ``divergences`` and set the verdict."""
        settled = [d for d in self.divergences if not d.in_flight]
        kinds = Counter(d.kind for d in settled)
        self.missing_in_service = kinds[DivergenceKind.MISSING_IN_SERVICE]
        self.missing_in_monolith = kinds[DivergenceKind.MISSING_IN_MONOLITH]
        self.differing = kinds[DivergenceKind.DIFFERING]
        self.in_flight = len(self.divergences) - len(settled)
        fields: Counter[str] = Counter(f.field for d in settled for f in d.fields)
        self.field_totals = dict(sorted(fields.items()))
        self.listed = len(self.divergences)
        if self.error:
            self.verdict = Verdict.ERROR
        else:
            self.verdict = Verdict.DIVERGENT if self.divergent else Verdict.CLEAN


class Report(BaseModel):
    """One reconcile run of a context."""

    run_id: str
    context: str
    phase: str | None = None
    started_at: datetime
    finished_at: datetime | None = None
    seconds: float = 0.0
    hash_mode: str = ""
    executor: str = "local"
    kind: RunKind = RunKind.FULL
    fallback: str | None = None  # why an incremental run checked some table in full
    verdict: Verdict = Verdict.CLEAN
    tables: list[TableReport] = []

    def settle(self) -> None:
        """Set the run's verdict from its tables'."""
        verdicts = {table.verdict for table in self.tables}
        if Verdict.ERROR in verdicts:
            self.verdict = Verdict.ERROR
        elif Verdict.DIVERGENT in verdicts:
            self.verdict = Verdict.DIVERGENT
        else:
            self.verdict = Verdict.CLEAN

    def table(self, name: str) -> TableReport:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(name)

    def limited(self, limit: int) -> Report:
        """A copy listing at most ``limit`` divergent keys per table (totals unchanged)."""
        tables = [
            table.model_copy(
                update={
                    "divergences": table.divergences[:limit],
                    "listed": min(limit, table.listed),
                }
            )
            for table in self.tables
        ]
        return self.model_copy(update={"tables": tables})
