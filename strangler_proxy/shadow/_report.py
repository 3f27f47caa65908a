"""The shadow report: match rate per route with counts, top differing fields, example diffs.

Built from any results store, so live shadowing (Redis) and an offline replay
(memory) print the same report, as a terminal table, JSON or a standalone HTML page.

    report = build_report(store, since=parse_since("1h"))
    print(render_json(report))
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import StringIO
from typing import Any

from rich.console import Console
from rich.table import Table

from strangler_proxy.shadow.store import Counts, ShadowResults

__all__ = ["RouteReport", "ShadowReport", "build_report", "render"]


@dataclass(frozen=True)
class RouteReport:
    """One route's results over the report's time range."""

    route: str
    context: str
    counts: Counts
    top_fields: list[tuple[str, int]]
    examples: list[dict[str, Any]]
    series: list[tuple[float, Counts]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "context": self.context,
            **self.counts.to_dict(),
            "top_fields": [{"path": path, "count": count} for path, count in self.top_fields],
            "examples": self.examples,
            "series": [
                {"at": _iso(at), "compared": c.compared, "match_rate": c.match_rate}
                for at, c in self.series
            ],
        }


@dataclass(frozen=True)
class ShadowReport:
    """Every selected route, plus the totals the gates would see."""

    routes: list[RouteReport]
    since: float | None = None
    generated_at: float = field(default_factory=lambda: datetime.now(UTC).timestamp())

    @property
    def totals(self) -> Counts:
        total = Counts()
        for route in self.routes:
            total = total + route.counts
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "generated_at": _iso(self.generated_at),
            "since": _iso(self.since) if self.since else None,
            "totals": self.totals.to_dict(),
            "routes": [route.to_dict() for route in self.routes],
        }


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def build_report(
    store: ShadowResults,
    *,
    route: str | None = None,
    since: float | None = None,
    top: int = 5,
    examples: int = 3,
) -> ShadowReport:
    """Gather counts, top fields and a few example diffs per route."""
    known = store.routes()
    names = [route] if route is not None else sorted(known)
    routes = [
        RouteReport(
            route=name,
            context=known.get(name, ""),
            counts=store.counts(route=name, since=since),
            top_fields=store.top_fields(name, since=since, limit=top),
            examples=_trim(store.samples(name, since=since, limit=examples)),
            series=store.series(name, since=since),
        )
        for name in names
    ]
    return ShadowReport(routes=routes, since=since)


def _trim(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Examples without bodies: the diff and the request line say enough in a report."""
    return [
        {
            "at": _iso(sample["at"]),
            "kind": sample["kind"],
            "request": _request_line(sample),
            "error": sample.get("error", ""),
            "differences": sample.get("differences", [])[:10],
        }
        for sample in samples
    ]


def _request_line(sample: dict[str, Any]) -> str:
    request = sample.get("request") or {}
    return f"{request.get('method', '?')} {request.get('path', '?')}"


# dropped: the mirror's queue was full; shed: kept back while the proxy needed the CPU
_COLUMNS = ("route", "context", "compared", "matched", "mismatched", "dropped", "shed", "errors")


def _rate(counts: Counts) -> str:
    rate = counts.match_rate
    return "-" if rate is None else f"{rate:.2%}"


# C0 and C1 controls (ESC starts terminal escape sequences), DEL, and the Unicode
# line/paragraph separators and bidi overrides that reorder what a terminal shows.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """``text`` safe for a terminal: each control character shown as ``\\xNN``/``\\uNNNN``."""
    return _CONTROL.sub(lambda m: ascii(m.group())[1:-1], str(text))


def render_table(report: ShadowReport, *, width: int = 140) -> str:
    """Rich tables: the routes, then each route's top fields and example diffs.

    Every value that comes from stored data (routes, paths, requests, errors, values)
    goes through :func:`printable`: a stored escape sequence is shown, never obeyed.
    """
    buffer = StringIO()
    console = Console(file=buffer, width=width, force_terminal=False, color_system=None)
    table = Table(title="Shadow comparison")
    for column in _COLUMNS:
        table.add_column(column, justify="left" if column in ("route", "context") else "right")
    table.add_column("match rate", justify="right")
    for item in report.routes:
        c = item.counts
        values = (c.compared, c.matched, c.mismatched, c.dropped, c.shed, c.shadow_errors)
        table.add_row(printable(item.route), printable(item.context), *map(str, values), _rate(c))
    console.print(table)
    for item in report.routes:
        if item.top_fields:
            fields = ", ".join(f"{printable(path)} ({count})" for path, count in item.top_fields)
            console.print(f"{printable(item.route)} top fields: {fields}", markup=False)
        for example in item.examples:
            line = f"  {example['kind']}: {example['request']} {example['error']}"
            console.print(printable(line.rstrip()), markup=False)
            for diff in example["differences"]:
                text = f"    {diff['path']}: {diff['primary']} -> {diff['candidate']}"
                console.print(printable(text), markup=False)
    return buffer.getvalue()


def render_json(report: ShadowReport) -> str:
    return json.dumps(report.to_dict(), indent=2)


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:4px 8px}td.n{text-align:right}"
    ".bad{color:#b00}code{background:#f4f4f4}"
)


def _sparkline(series: list[tuple[float, Counts]], width: int = 240, height: int = 40) -> str:
    """Match rate per bucket as an inline SVG polyline (0 at the bottom, 1 at the top)."""
    points = [(at, c.match_rate) for at, c in series if c.match_rate is not None]
    if len(points) < 2:
        return ""
    first, last = points[0][0], points[-1][0]
    span = (last - first) or 1.0
    coords = " ".join(
        f"{(at - first) / span * width:.1f},{(1 - rate) * height:.1f}" for at, rate in points
    )
    return (
        f'<svg width="{width}" height="{height}" role="img" aria-label="match rate over time">'
        f'<polyline fill="none" stroke="#36c" stroke-width="1.5" points="{coords}"/></svg>'
    )


def _html_route(item: RouteReport) -> str:
    esc = html.escape
    parts = [f"<h2>{esc(item.route)}</h2>", _sparkline(item.series)]
    if item.top_fields:
        rows = "".join(
            f"<li><code>{esc(path)}</code> ({count})</li>" for path, count in item.top_fields
        )
        parts.append(f"<p>Top differing fields:</p><ul>{rows}</ul>")
    for example in item.examples:
        diffs = "".join(
            f"<tr><td><code>{esc(d['path'])}</code></td><td>{esc(d['primary'])}</td>"
            f"<td class=bad>{esc(d['candidate'])}</td></tr>"
            for d in example["differences"]
        )
        parts.append(
            f"<p>{esc(example['at'])} {esc(example['kind'])} <code>{esc(example['request'])}"
            f"</code> {esc(example['error'])}</p>"
            f"<table><tr><th>path</th><th>primary</th><th>candidate</th></tr>{diffs}</table>"
        )
    return "".join(parts)


def render_html(report: ShadowReport) -> str:
    """A standalone page (no scripts, everything escaped)."""
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(r.route)}</td><td>{esc(r.context)}</td>"
        + "".join(
            f"<td class=n>{v}</td>"
            for v in (
                r.counts.compared,
                r.counts.matched,
                r.counts.mismatched,
                r.counts.dropped,
                r.counts.shed,
                r.counts.shadow_errors,
            )
        )
        + f"<td class=n>{_rate(r.counts)}</td></tr>"
        for r in report.routes
    )
    head = "".join(f"<th>{h}</th>" for h in _COLUMNS)
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>Shadow comparison</title>"
        f"<style>{_STYLE}</style></head><body><h1>Shadow comparison</h1>"
        f"<p>Generated {esc(_iso(report.generated_at))}; match rate {_rate(report.totals)} over "
        f"{report.totals.compared} compared.</p>"
        f"<table><tr>{head}<th>match rate</th></tr>{rows}</table>"
        + "".join(_html_route(item) for item in report.routes)
        + "</body></html>\n"
    )


def render(report: ShadowReport, fmt: str) -> str:
    """``table``, ``json`` or ``html``."""
    renderers = {"table": render_table, "json": render_json, "html": render_html}
    if fmt not in renderers:
        raise ValueError(f"unknown format {fmt!r}: use table, json or html")
    return renderers[fmt](report)
