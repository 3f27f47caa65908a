"""HTML of the dashboard: the page shell, the login page and one fragment per section.

Fragments are rendered from the payload of :mod:`migration_plans.control.dashboard.data`;
the browser swaps a section's fragment in when it changed. Every value from a store
is escaped here; there are no inline scripts or styles (the page's CSP forbids them).

    page(data, prefix="/_strangler/")
    sections(data, prefix="/_strangler/")   # {"contexts": "<article ...>", ...}
"""

from __future__ import annotations

import difflib
from datetime import UTC, datetime
from html import escape
from typing import Any

from migration_plans.control.dashboard.data import PHASES
from migration_plans.control.dashboard.svgplot import percent, rate_floor, time_plot

SECTIONS = ("contexts", "routes", "shadow", "reconciler", "dualwrite", "sagas")
TITLES = {
    "contexts": "Bounded contexts",
    "routes": "Route table",
    "shadow": "Shadow traffic",
    "reconciler": "Reconciler",
    "dualwrite": "Dual-write relay",
    "sagas": "Sagas",
}
DIFF_CONTEXT = 2
DIFF_MAX_ROWS = 400


def e(value: object) -> str:
    return escape("" if value is None else str(value))


def clock(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_clock(text: str | None) -> str:
    if not text:
        return "-"
    return clock(datetime.fromisoformat(text).timestamp())


def _head(title: str, prefix: str) -> str:
    static = f"{prefix}dashboard/static/"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title>"
        f'<link rel="stylesheet" href="{static}dashboard.css"></head>'
    )


def login_page(prefix: str, *, message: str = "", disabled: bool = False) -> str:
    """The login form (the only thing an unauthenticated browser gets)."""
    note = f'<p class="alert error" role="alert">{e(message)}</p>' if message else ""
    form = (
        "<p>The admin API is off: start the proxy with <code>STRANGLER_ADMIN_TOKEN</code> set.</p>"
        if disabled
        else (
            f'<form method="post" action="{prefix}dashboard/login" class="login-form">'
            '<label for="token">Admin token</label>'
            '<input id="token" name="token" type="password" autocomplete="current-password" '
            "required autofocus>"
            '<button type="submit">Sign in</button></form>'
        )
    )
    return (
        _head("strangler: sign in", prefix)
        + '<body class="login"><main class="login-box">'
        + '<h1><span class="brand">strangler</span> migration dashboard</h1>'
        + note
        + form
        + '<p class="hint">The token is the proxy\'s <code>STRANGLER_ADMIN_TOKEN</code>; '
        + "it is kept in an HttpOnly cookie for this admin path only.</p>"
        + "</main></body></html>"
    )


def page(
    data: dict[str, Any],
    prefix: str,
    *,
    fragments: dict[str, str] | None = None,
    interval_ms: int = 2000,
) -> str:
    """The whole dashboard, first paint included (the script keeps it current)."""
    fragments = fragments if fragments is not None else sections(data, prefix)
    body = "".join(
        f'<section class="section" id="section-{name}" aria-labelledby="title-{name}">'
        f'<h2 id="title-{name}">{TITLES[name]}</h2>'
        f'<div class="section-body" data-section="{name}">{fragments[name]}</div></section>'
        for name in SECTIONS
    )
    return (
        _head("strangler: migration dashboard", prefix)
        + f'<body data-dashboard data-source="{prefix}dashboard/data" '
        + f'data-interval="{interval_ms}">'
        + '<header class="top"><h1><span class="brand">strangler</span> migration dashboard</h1>'
        + '<div class="status"><span id="live" class="live">live</span> '
        + f'<span id="updated" data-at="{data.get("generated_at", "")}">'
        + f"updated {e(clock(data.get('generated_at')))}</span></div>"
        + f'<form method="post" action="{prefix}dashboard/logout" class="logout">'
        + '<button type="submit">Sign out</button></form></header>'
        + f'<main class="layout">{body}</main>'
        + f'<script src="{prefix}dashboard/static/dashboard.js" defer></script>'
        + "</body></html>"
    )


def sections(data: dict[str, Any], prefix: str) -> dict[str, str]:
    """One HTML fragment per section of the page."""
    return {
        "contexts": contexts_html(data),
        "routes": routes_html(data.get("routes", {})),
        "shadow": shadow_html(data.get("shadow", {})),
        "reconciler": reconciler_html(data.get("reconciler", {}), prefix),
        "dualwrite": dualwrite_html(data.get("dualwrite", [])),
        "sagas": sagas_html(data.get("sagas", {})),
    }


def _error(section: dict[str, Any] | None) -> str:
    if section and section.get("error"):
        return f'<p class="alert error">unavailable: {e(section["error"])}</p>'
    return ""


# -- contexts ----------------------------------------------------------------------------


def gate_value(metric: str, value: float | None) -> str:
    if value is None:
        return "unknown"
    if metric == "shadow_match_rate":
        return percent(value)
    if metric.endswith("_ms"):
        return f"{value:,.0f} ms"
    return f"{value:g}"


def _track(phase: str) -> str:
    reached = PHASES.index(phase) if phase in PHASES else -1
    steps = []
    for index, name in enumerate(PHASES):
        state = "done" if index < reached else "current" if index == reached else "todo"
        aria = ' aria-current="step"' if state == "current" else ""
        steps.append(f'<li class="step {state}"{aria}>{e(name.replace("_", " "))}</li>')
    return f'<ol class="track">{"".join(steps)}</ol>'


OPS = {">=": "\u2265", "<=": "\u2264", "==": "=", ">": ">", "<": "<"}


def _gate_row(gate: dict[str, Any]) -> str:
    metric = gate["metric"]
    now = gate_value(metric, gate["value"])
    if gate.get("samples") is not None:
        now += f" over {gate['samples']:,}"
    need = f"{OPS.get(gate['op'], gate['op'])} {gate_value(metric, gate['threshold'])}"
    if gate.get("min_samples"):
        need += f" over \u2265 {gate['min_samples']:,}"
    verdict = "pass" if gate["passed"] else "fail"
    source = f' title="{e(gate.get("source"))}"' if gate.get("source") else ""
    return (
        f'<tr class="gate {verdict}" data-metric="{e(metric)}"{source}>'
        f'<td class="verdict">{verdict}</td><td>{e(metric)}</td>'
        f'<td class="num">now {e(now)}</td><td class="need">need {e(need)}</td></tr>'
    )


def _last_transition(last: dict[str, Any] | None) -> str:
    if last is None:
        return '<p class="last muted">No transition recorded yet.</p>'
    forced = ' <span class="tag warn">forced</span>' if last.get("forced") else ""
    reason = f' <span class="muted">"{e(last["reason"])}"</span>' if last.get("reason") else ""
    return (
        f'<p class="last">Last: {e(last["from"])} &rarr; <b>{e(last["to"])}</b> by '
        f'<b class="actor">{e(last["by"])}</b>, {e(iso_clock(last.get("at")))}'
        f"{forced}{reason}</p>"
    )


def _replicas(card: dict[str, Any]) -> str:
    """Every replica acting for the context: what it serves, and what is wrong with it."""
    if card.get("replicas_error"):
        return f'<p class="alert error">replicas: {e(card["replicas_error"])}</p>'
    published = card.get("published")
    replicas = card.get("replicas") or []
    if published is None and not replicas:
        return ""
    epoch = None if published is None else published["epoch"]
    rows = []
    for replica in replicas:
        served = replica["epochs"].get(card["context"])
        state = "silent" if replica["silent"] else ("behind" if served != epoch else "ok")
        if replica.get("nack"):
            state = "nack"
        routes = (replica.get("route_hash") or "")[:12] or "-"
        rows.append(
            f'<tr class="replica {state}"><td>{e(replica["role"])}</td>'
            f"<td>{e(replica['address'] or replica['instance'])}</td>"
            f'<td class="num">epoch {e(str(served))}</td><td>routes {e(routes)}</td>'
            f'<td class="verdict">{state}</td></tr>'
        )
    fenced = (
        ' <span class="tag warn">writes fenced</span>' if published and published["fenced"] else ""
    )
    head = f'<div class="gates-head">Replicas, published epoch <b>{e(str(epoch))}</b>{fenced}</div>'
    body = "".join(rows) or '<tr><td colspan="5" class="muted">no replica registered</td></tr>'
    return f'{head}<table class="gates replicas"><tbody>{body}</tbody></table>'


def context_card(card: dict[str, Any]) -> str:
    phase = card["phase"]
    if card["next"] is None:
        gates = '<p class="muted">Final phase: no gates left.</p>'
    else:
        state = "ready" if card["ready"] else "blocked"
        rows = "".join(_gate_row(gate) for gate in card["gates"]) or (
            '<tr><td colspan="4" class="muted">no gates declared</td></tr>'
        )
        gates = (
            f'<div class="gates-head">Gates to enter <b>{e(card["next"])}</b> '
            f'<span class="tag {state}">{state}</span></div>'
            f'<table class="gates"><tbody>{rows}</tbody></table>'
        )
    error = (
        f'<p class="alert error">history: {e(card["history_error"])}</p>'
        if card.get("history_error")
        else ""
    )
    return (
        f'<article class="card context" data-context="{e(card["context"])}" '
        f'data-phase="{e(phase)}"><header><h3>{e(card["context"])}</h3>'
        f'<span class="phase phase-{e(phase)}">{e(phase.replace("_", " "))}</span></header>'
        f"{_track(phase)}{gates}{_replicas(card)}"
        f"{_last_transition(card.get('last_transition'))}{error}</article>"
    )


def contexts_html(data: dict[str, Any]) -> str:
    error = _error({"error": data.get("contexts_error")})
    cards = "".join(context_card(card) for card in data.get("contexts", []))
    if not cards and not error:
        cards = '<p class="muted">No migration plans found.</p>'
    return f'{error}<div class="cards">{cards}</div>'


# -- route table -------------------------------------------------------------------------


def _split_bar(split: list[list[Any]]) -> str:
    x = 0.0
    rects = []
    for index, (upstream, weight) in enumerate(split):
        rects.append(
            f'<rect class="seg seg-{index % 4}" x="{x:.1f}" y="0" width="{float(weight):.1f}" '
            f'height="8"><title>{e(upstream)} {float(weight):g}%</title></rect>'
        )
        x += float(weight)
    legend = " &middot; ".join(f"{e(up)} {float(w):g}%" for up, w in split)
    return (
        '<svg class="splitbar" viewBox="0 0 100 8" preserveAspectRatio="none" '
        f'aria-hidden="true">{"".join(rects)}</svg><span class="legend">{legend}</span>'
    )


def _rate(route: dict[str, Any]) -> str:
    if route["rate"] is None:
        return '<span class="muted">measuring</span>'
    served = ", ".join(f"{e(up)} {rps:.1f}" for up, rps in route["served"].items() if rps > 0)
    detail = f'<span class="muted small">{served}</span>' if served else ""
    return f'<span class="num">{route["rate"]:.1f}</span> {detail}'


def routes_html(section: dict[str, Any]) -> str:
    if section.get("error"):
        return _error(section)
    error = section.get("last_reload_error")
    if error:
        issues = "".join(f"<li>{e(issue)}</li>" for issue in error["issues"])
        reload = (
            f'<div class="alert error reload-error">Reload refused at {e(clock(error["at"]))}; '
            f"still serving the last good table:<ul>{issues}</ul></div>"
        )
    else:
        reload = '<span class="tag ready">last reload ok</span>'
    meta = (
        f'<dl class="meta"><div><dt>version</dt><dd class="table-version">{e(section["version"])}'
        f'</dd></div><div><dt>hash</dt><dd><code class="table-hash">{e(section["hash"])}</code>'
        f"</dd></div><div><dt>generation</dt><dd>{e(section['generation'])}</dd></div>"
        f"<div><dt>loaded</dt><dd>{e(clock(section['loaded_at']))}</dd></div>"
        f"<div><dt>default</dt><dd>{e(section['default_upstream'])}</dd></div></dl>"
    )
    rows = "".join(
        f'<tr data-route="{e(r["name"])}"><td>{e(r["context"])}</td><td><b>{e(r["name"])}</b>'
        f"</td><td><code>{e(' '.join(r['methods']))}</code> <code>{e(r['match'])}</code></td>"
        f'<td class="split">{_split_bar(r["split"])}</td>'
        f"<td>{e(r['shadow']) if r['shadow'] else '-'}</td><td>{_rate(r)}</td></tr>"
        for r in section.get("routes", [])
    )
    table = (
        '<div class="scroll"><table class="routes"><thead><tr><th>context</th><th>route</th>'
        "<th>match</th><th>upstream split</th><th>shadow to</th><th>req/s (30 s)</th></tr>"
        f"</thead><tbody>{rows}</tbody></table></div>"
    )
    return f'<div class="table-meta">{meta}{reload}</div>{table}'


# -- shadow ------------------------------------------------------------------------------


def side_by_side(left: str, right: str) -> str:
    """A two-column diff table of two texts (long equal runs folded)."""
    a, b = left.splitlines(), right.splitlines()
    rows: list[str] = []

    def row(css: str, x: str | None, y: str | None) -> None:
        rows.append(
            f'<tr class="{css}"><td class="l">{e(x) if x is not None else ""}</td>'
            f'<td class="r">{e(y) if y is not None else ""}</td></tr>'
        )

    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            span = i2 - i1
            if span > 2 * DIFF_CONTEXT + 1:
                for k in range(DIFF_CONTEXT):
                    row("eq", a[i1 + k], b[j1 + k])
                row("fold", f"... {span - 2 * DIFF_CONTEXT} equal lines", "")
                for k in range(span - DIFF_CONTEXT, span):
                    row("eq", a[i1 + k], b[j1 + k])
            else:
                for k in range(span):
                    row("eq", a[i1 + k], b[j1 + k])
            continue
        for k in range(max(i2 - i1, j2 - j1)):
            x = a[i1 + k] if i1 + k < i2 else None
            y = b[j1 + k] if j1 + k < j2 else None
            row("chg" if x is not None and y is not None else "del" if y is None else "add", x, y)
    if len(rows) > DIFF_MAX_ROWS:
        rows = [*rows[:DIFF_MAX_ROWS], '<tr class="fold"><td colspan="2">... cut</td></tr>']
    return (
        '<table class="diff"><thead><tr><th>primary</th><th>candidate</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _sample_html(route: str, sample: dict[str, Any] | None) -> str:
    if sample is None:
        return '<p class="muted">No mismatch sample kept.</p>'
    diffs = "".join(
        f"<tr><td><code>{e(d.get('path'))}</code></td><td>{e(d.get('primary'))}</td>"
        f"<td>{e(d.get('candidate'))}</td></tr>"
        for d in sample["differences"]
    )
    error = f'<p class="alert error">{e(sample["error"])}</p>' if sample["error"] else ""
    status = f"primary {e(sample['primary_status'])}, candidate {e(sample['candidate_status'])}"
    return (
        f'<details class="sample" id="sample-{e(route)}" open><summary>Latest {e(sample["kind"])}:'
        f" <code>{e(sample['method'])} {e(sample['target'])}</code> "
        f'<span class="muted">{e(clock(sample["at"]))}, {status}</span></summary>{error}'
        '<table class="differences"><thead><tr><th>field</th><th>primary</th>'
        f"<th>candidate</th></tr></thead><tbody>{diffs}</tbody></table>"
        f"{side_by_side(sample['primary_body'], sample['candidate_body'])}</details>"
    )


def shadow_route(route: dict[str, Any]) -> str:
    counts = route["counts"]
    rate = counts["match_rate"]
    threshold = route.get("threshold")
    points = [(at, value) for at, value, _ in route["series"]]
    plot = time_plot(
        points,
        y_range=(rate_floor([v for _, v in points if v is not None], threshold), 1.0),
        y_format=percent,
        threshold=threshold,
        title=f"match rate of {route['route']}",
        bad=(lambda v: v < threshold) if threshold is not None else None,
    )
    fields = (
        "".join(
            f'<li><code>{e(path)}</code> <span class="num">{n:,}</span></li>'
            for path, n in route["top_fields"]
        )
        or '<li class="muted">none</li>'
    )
    state = "fail" if threshold is not None and rate is not None and rate < threshold else "pass"
    stats = (
        f'<span class="tag {state}">{e(percent(rate) if rate is not None else "no data")}</span> '
        f'<span class="muted">{counts["compared"]:,} compared, {counts["mismatched"]:,} differ, '
        f"{counts['shadow_errors']:,} errors, {counts['dropped']:,} dropped</span>"
    )
    return (
        f'<article class="panel shadow-route" data-route="{e(route["route"])}">'
        f'<header><h3>{e(route["route"])} <span class="muted">{e(route["context"])}</span></h3>'
        f"{stats}</header>"
        f'<div class="split-2"><figure class="plot-box">{plot}<figcaption>match rate over time'
        f"{' (dashed: gate)' if threshold is not None else ''}</figcaption></figure>"
        f'<div class="fields"><h4>Top differing fields</h4><ol>{fields}</ol></div></div>'
        f"{_sample_html(route['route'], route['sample'])}</article>"
    )


def shadow_html(section: dict[str, Any]) -> str:
    if section.get("error"):
        return _error(section)
    if not section.get("configured", False):
        return '<p class="muted">No shadow results store.</p>'
    routes = section.get("routes", [])
    if not routes:
        return '<p class="muted">No mirrored traffic recorded yet.</p>'
    return "".join(shadow_route(route) for route in routes)


# -- reconciler --------------------------------------------------------------------------


def _table_plot(table: dict[str, Any]) -> str:
    points = table["points"]
    plot = time_plot(
        [(at, float(divergent)) for at, divergent, _ in points],
        title=f"divergent rows of {table['context']}.{table['table']}",
        bad=lambda v: v > 0,
    )
    last = points[-1] if points else None
    summary = (
        f'<span class="tag {"pass" if last[1] == 0 else "fail"}">{last[1]:,} divergent</span> '
        f'<span class="muted">{len(points)} runs, last {e(clock(last[0]))}</span>'
        if last
        else ""
    )
    return (
        f'<article class="panel recon-table" data-table="{e(table["context"])}.{e(table["table"])}"'
        f' data-runs="{len(points)}"><header><h3>{e(table["context"])}.{e(table["table"])}</h3>'
        f'{summary}</header><figure class="plot-box">{plot}'
        "<figcaption>divergent rows per run</figcaption></figure></article>"
    )


def _run_html(run: dict[str, Any], prefix: str) -> str:
    rows = "".join(
        f'<tr class="{e(t["verdict"])}"><td>{e(t["name"])}</td><td>{e(t["verdict"])}</td>'
        f'<td class="num">{t["monolith_rows"]:,}</td><td class="num">{t["service_rows"]:,}</td>'
        f'<td class="num">{t["missing_in_service"]:,}</td>'
        f'<td class="num">{t["missing_in_monolith"]:,}</td>'
        f'<td class="num">{t["differing"]:,}</td><td class="num">{t["in_flight"]:,}</td>'
        f"<td>{', '.join(f'{e(n)} ({c})' for n, c in t['fields']) or '-'}</td></tr>"
        for t in run["tables"]
    )
    verdict = "pass" if run["verdict"] == "clean" else "fail"
    return (
        f'<article class="panel last-run" data-run="{e(run["run_id"])}">'
        f'<header><h3>Last run of {e(run["context"])} <span class="tag {verdict}">'
        f'{e(run["verdict"])}</span></h3><a class="report-link" '
        f'href="{prefix}dashboard/report/{e(run["run_id"])}" target="_blank" rel="noopener">'
        "HTML report</a></header>"
        f'<p class="muted">{e(iso_clock(run["started_at"]))}, {run["seconds"]} s, '
        f"{e(run['executor'])}, phase {e(run['phase'] or '-')}, run <code>{e(run['run_id'])}"
        "</code></p>"
        '<div class="scroll"><table class="runs"><thead><tr><th>table</th><th>verdict</th>'
        "<th>monolith rows</th><th>service rows</th><th>missing in service</th>"
        "<th>missing in monolith</th><th>differing</th><th>in flight</th><th>fields</th>"
        f"</tr></thead><tbody>{rows}</tbody></table></div></article>"
    )


def reconciler_html(section: dict[str, Any], prefix: str) -> str:
    if section.get("error"):
        return _error(section)
    tables = "".join(_table_plot(table) for table in section.get("tables", []))
    runs = "".join(_run_html(run, prefix) for run in section.get("last_runs", []))
    if not tables:
        return '<p class="muted">No reconcile run recorded yet.</p>'
    return f'<div class="panels">{tables}</div>{runs}'


# -- dual-write --------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def _side_row(context: str, phase: str, side: dict[str, Any]) -> str:
    if not side.get("reachable", True):
        return (
            f'<tr class="unreachable"><td>{e(context)}</td><td>{e(phase)}</td>'
            f'<td>{e(side["side"])}</td><td colspan="6" class="muted">unreachable: '
            f"{e(side.get('error'))}</td></tr>"
        )
    dead = side["dead"]
    return (
        f"<tr><td>{e(context)}</td><td>{e(phase)}</td><td>{e(side['side'])} outbox</td>"
        f'<td class="num">{side["pending"]:,}</td><td class="num">{side["in_flight"]:,}</td>'
        f'<td class="num {"bad" if dead else ""}">{dead:,}</td>'
        f'<td class="num">{side["applied"]:,}</td><td class="num">{_ms(side["lag_p50_ms"])}</td>'
        f'<td class="num">{_ms(side["lag_p99_ms"])}</td></tr>'
    )


def dualwrite_html(contexts: list[dict[str, Any]]) -> str:
    rows = []
    for status in contexts:
        if status.get("error"):
            rows.append(
                f'<tr><td>{e(status["context"])}</td><td colspan="8" class="muted">'
                f"unavailable: {e(status['error'])}</td></tr>"
            )
            continue
        for side in ("monolith", "service"):
            rows.append(_side_row(status["context"], status["phase"], status[side]))
    if not rows:
        return '<p class="muted">No contexts.</p>'
    return (
        '<div class="scroll"><table class="relay"><thead><tr><th>context</th><th>phase</th>'
        "<th>events from</th><th>pending</th><th>in flight</th><th>dead letters</th>"
        "<th>applied</th><th>lag p50</th><th>lag p99</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


# -- sagas -------------------------------------------------------------------------------


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _saga_row(saga: dict[str, Any]) -> str:
    stuck = saga["stuck"]
    state = saga["state"] + (f" (from {saga['dead_from']})" if saga.get("dead_from") else "")
    error = " ".join(str(saga.get("last_error") or "").split())
    return (
        f'<tr class="saga{" stuck" if stuck else ""}" data-saga="{e(saga["id"])}">'
        f'<td class="verdict{" bad" if stuck else ""}">{"stuck" if stuck else ""}</td>'
        f'<td class="num">{e(saga["id"])}</td><td>{e(saga["kind"])}</td>'
        f"<td><code>{e(saga['key'])}</code></td><td>{e(state)}</td>"
        f"<td>{e(saga['step_name'] or saga['step'])}</td>"
        f'<td class="num">{e(saga["attempts"])}</td><td>{e(saga["outcome"] or "-")}</td>'
        f'<td class="num">{e(_age(saga["age_s"]))}</td>'
        f'<td class="error" title="{e(error)}">{e(error[:120]) or "-"}</td></tr>'
    )


def sagas_html(section: dict[str, Any]) -> str:
    if section.get("error"):
        return _error(section)
    counts = section.get("counts") or {}
    if not counts.get("total"):
        return '<p class="muted">No saga recorded yet.</p>'
    states = " ".join(
        f'<span class="tag{" fail" if state == "dead" and n else ""}" data-state="{e(state)}">'
        f"{e(state)} {n:,}</span>"
        for state, n in counts.get("states", {}).items()
    )
    stuck = counts.get("stuck", 0)
    after = section.get("stuck_after_s")
    verdict = (
        f'<span class="tag {"fail" if stuck else "pass"}" data-stuck="{stuck}">{stuck:,} stuck'
        "</span>"
    )
    head = (
        f'<div class="gates-head">{verdict} {states} <span class="muted small">stuck: dead, '
        f"failing, or untouched for {e(f'{after:g}' if after is not None else '?')} s; "
        "<code>strangler saga retry ID</code> resumes a dead one</span></div>"
    )
    rows = "".join(_saga_row(saga) for saga in section.get("sagas", []))
    return (
        f'{head}<div class="scroll"><table class="sagas"><thead><tr><th></th><th>id</th>'
        "<th>kind</th><th>key</th><th>state</th><th>step</th><th>attempts</th>"
        "<th>outcome</th><th>age</th><th>last error</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>"
    )
