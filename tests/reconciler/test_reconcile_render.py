"""Report rendering and root-cause hints (pure: no database)."""

from __future__ import annotations

from datetime import UTC, datetime

from reconciler.diff import Divergence, DivergenceKind, FieldDiff, root_cause_hints
from reconciler.render import to_html, to_json, to_rich
from reconciler.report import Report, TableReport, Verdict


def _report(divergences: list[Divergence]) -> Report:
    table = TableReport(
        name="products",
        monolith_table="catalog_product",
        service_table="products",
        monolith_rows=10,
        service_rows=10,
        divergences=divergences,
    )
    table.tally()
    report = Report(run_id="r1", context="catalog", started_at=datetime.now(UTC), tables=[table])
    report.settle()
    return report


def _differing(key: int, field: str, monolith: object, service: object) -> Divergence:
    return Divergence(
        key=key,
        kind=DivergenceKind.DIFFERING,
        fields=(FieldDiff(field=field, monolith=monolith, service=service),),
    )


def test_html_is_self_contained_and_escapes_values() -> None:
    report = _report([_differing(1, "title", "<script>alert(1)</script>", "ok ☕")])
    page = to_html(report)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "ok ☕" in page and "<link" not in page and "src=" not in page


def test_json_lists_at_most_limit_keys_with_complete_totals() -> None:
    report = _report([_differing(k, "sku", "a", "b") for k in range(1, 6)])
    import json

    data = json.loads(to_json(report, limit=2))
    table = data["tables"][0]
    assert (table["differing"], len(table["divergences"]), table["listed"]) == (5, 2, 2)
    assert data["verdict"] == Verdict.DIVERGENT


def test_in_flight_rows_do_not_make_a_run_divergent() -> None:
    flight = Divergence(key=3, kind=DivergenceKind.MISSING_IN_SERVICE, in_flight=True)
    report = _report([flight])
    assert report.verdict is Verdict.CLEAN
    assert report.tables[0].in_flight == 1
    assert to_rich(report) is not None


def test_hints_name_scale_shift_and_empty_side() -> None:
    scaled = [_differing(k, "price_cents", k, k * 100) for k in range(1, 5)]
    shifted = [
        _differing(k, "updated_at", f"2026-01-01T10:00:0{k}+00:00", f"2026-01-01T11:00:0{k}+00:00")
        for k in range(1, 5)
    ]
    hints = root_cause_hints(scaled + shifted, 10, 10)
    assert any("x100" in hint for hint in hints)
    assert any("+3600s" in hint for hint in hints)
    assert root_cause_hints([], 10, 0)[0].startswith("the service table is empty")
