"""Render a report: JSON for machines, a rich table for terminals, one self-contained HTML file.

print(to_json(report))
console.print(to_rich(report))
Path("report.html").write_text(to_html(report))
"""

from __future__ import annotations

import html
import json
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from reconciler.report import Report, TableReport, Verdict

_STYLE = {Verdict.CLEAN: "green", Verdict.DIVERGENT: "red", Verdict.ERROR: "bold red"}
_COUNTS = (
    ("monolith rows", "monolith_rows"),
    ("service rows", "service_rows"),
    ("missing in service", "missing_in_service"),
    ("missing in monolith", "missing_in_monolith"),
    ("differing", "differing"),
    ("in flight", "in_flight"),
    ("keys checked", "keys_checked"),
)


def to_json(report: Report, limit: int = 100) -> str:
    """The report as JSON, listing at most ``limit`` keys per table (totals are complete)."""
    return report.limited(limit).model_dump_json(indent=2)


def _value(value: Any) -> str:
    return "NULL" if value is None else json.dumps(value, ensure_ascii=False, default=str)


def _diff_lines(table: TableReport, limit: int) -> list[str]:
    lines = []
    for divergence in table.divergences[:limit]:
        flight = " (in flight)" if divergence.in_flight else ""
        fields = "; ".join(
            f"{f.field}: {_value(f.monolith)} != {_value(f.service)}" for f in divergence.fields
        )
        reason = f"  ({divergence.reason})" if divergence.reason else ""
        lines.append(f"{divergence.key}  {divergence.kind}{flight}  {fields}{reason}".rstrip())
    return lines


def coverage_line(table: TableReport) -> str:
    """What a table's run covered: its kind, share of rows and outbox watermark range."""
    line = f"{table.kind} run, {table.keys_checked:,} keys checked ({table.coverage:.2%} of rows)"
    sides = sorted(set(table.watermark_from) | set(table.watermark_to))
    marks = ", ".join(
        f"{side} ({table.watermark_from.get(side, '-')}, {table.watermark_to.get(side, '-')}]"
        for side in sides
    )
    return f"{line}; outbox ids {marks}" if marks else line


def to_rich(report: Report, limit: int = 20) -> Group:
    """A terminal rendering: one summary table, then each table's first keys and hints."""
    summary = Table(
        title=f"reconcile {report.context} ({report.kind}): {report.verdict} "
        f"({report.seconds:.2f}s, run {report.run_id[:12]}, hash {report.hash_mode})"
    )
    summary.add_column("table")
    summary.add_column("verdict")
    for title, _ in _COUNTS:
        summary.add_column(title, justify="right")
    summary.add_column("coverage", justify="right")
    summary.add_column("seconds", justify="right")
    for table in report.tables:
        summary.add_row(
            table.name,
            Text(table.verdict.value, style=_STYLE[table.verdict]),
            *(f"{getattr(table, attr):,}" for _, attr in _COUNTS),
            f"{table.coverage:.2%}",
            f"{table.seconds:.2f}",
        )
    parts: list[Any] = [summary]
    if report.fallback:
        parts.append(Text(f"incremental fell back to full: {report.fallback}", style="yellow"))
    for table in report.tables:
        if table.error:
            parts.append(Text(f"{table.name}: error: {table.error}", style="bold red"))
        lines = _diff_lines(table, limit)
        if lines:
            shown = f"first {len(lines)} of {table.divergent + table.in_flight}"
            parts.append(Text(f"{table.name}: divergent keys ({shown})", style="bold"))
            parts.extend(Text("  " + line) for line in lines)
        if table.field_totals:
            totals = ", ".join(f"{name} x{count}" for name, count in table.field_totals.items())
            parts.append(Text(f"{table.name}: fields that differ: {totals}"))
        parts.extend(Text(f"{table.name}: hint: {hint}", style="yellow") for hint in table.hints)
        parts.extend(Text(f"{table.name}: note: {note}", style="dim") for note in table.notes)
        if report.kind == "incremental":
            parts.append(Text(f"{table.name}: {coverage_line(table)}", style="dim"))
    return Group(*parts)


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px}
th{background:#f4f4f4}td.n{text-align:right}.clean{color:#080}.divergent,.error{color:#c00}
.hint{background:#fff6d5;padding:4px 8px}code{font-family:ui-monospace,monospace}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table_section(table: TableReport, limit: int) -> str:
    rows = []
    for divergence in table.divergences[:limit]:
        fields = "<br>".join(
            f"<code>{_e(f.field)}</code>: {_e(_value(f.monolith))} &ne; {_e(_value(f.service))}"
            for f in divergence.fields
        )
        flight = " (in flight)" if divergence.in_flight else ""
        reason = f"<br>{_e(divergence.reason)}" if divergence.reason else ""
        rows.append(
            f"<tr><td class=n>{_e(divergence.key)}</td><td>{_e(divergence.kind)}{flight}"
            f"{reason}</td><td>{fields}</td></tr>"
        )
    hints = "".join(f"<p class=hint>{_e(hint)}</p>" for hint in table.hints)
    error = f"<p class=error>{_e(table.error)}</p>" if table.error else ""
    listed = (
        f"<p>{len(rows)} of {table.divergent + table.in_flight} divergent keys listed</p>"
        if rows
        else ""
    )
    body = (
        "<table><tr><th>key</th><th>class</th><th>fields (monolith &ne; service)</th></tr>"
        + "".join(rows)
        + "</table>"
        if rows
        else ""
    )
    coverage = f"<p>{_e(coverage_line(table))}</p>"
    return f"<h2>{_e(table.name)}</h2>{coverage}{error}{hints}{listed}{body}"


def to_html(report: Report, limit: int = 500) -> str:
    """A self-contained HTML page (inline CSS, no scripts, every value escaped)."""
    head = "".join(f"<th>{_e(title)}</th>" for title, _ in _COUNTS)
    rows = "".join(
        f"<tr><td>{_e(t.name)}</td><td class={t.verdict.value}>{t.verdict.value}</td>"
        + "".join(f"<td class=n>{getattr(t, attr):,}</td>" for _, attr in _COUNTS)
        + f"<td class=n>{t.seconds:.2f}</td></tr>"
        for t in report.tables
    )
    sections = "".join(_table_section(table, limit) for table in report.tables)
    title = f"reconcile {report.context}: {report.verdict.value}"
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{_e(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1 class={report.verdict.value}>{_e(title)}</h1>"
        f"<p>run <code>{_e(report.run_id)}</code>, started {_e(report.started_at.isoformat())}, "
        f"{report.seconds:.2f}s, phase {_e(report.phase)}, hash {_e(report.hash_mode)}, "
        f"executor {_e(report.executor)}, {_e(report.kind)} run</p>"
        f"<table><tr><th>table</th><th>verdict</th>{head}<th>seconds</th></tr>{rows}</table>"
        f"{sections}</body></html>"
    )
