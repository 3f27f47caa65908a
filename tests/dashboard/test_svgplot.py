"""Server-rendered plots: well-formed SVG, one marker per value, gaps, thresholds, escaping."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from migration_plans.control.dashboard.html import side_by_side
from migration_plans.control.dashboard.svgplot import nice_max, percent, rate_floor, time_plot

SVG = "{http://www.w3.org/2000/svg}"
T0 = 1764201600.0  # 2025-11-27 00:00 UTC


def test_points_line_and_threshold() -> None:
    points = [(T0, 1.0), (T0 + 60, 0.99), (T0 + 120, None), (T0 + 180, 0.999), (T0 + 240, 1.0)]
    svg = time_plot(points, y_range=(0.0, 1.0), y_format=percent, threshold=0.995, title="rate")
    root = ET.fromstring(svg)
    assert root.get("data-points") == "4"
    circles = root.findall(f"{SVG}circle")
    assert len(circles) == 4
    assert len(root.findall(f"{SVG}polyline")) == 2  # the None value breaks the line
    assert len(root.findall(f"{SVG}line[@class='threshold']")) == 1
    labels = [text.text for text in root.findall(f"{SVG}text")]
    assert "00:00" in labels and "00:04 UTC" in labels and "100%" in labels
    ys = [float(c.get("cy", 0)) for c in circles]
    assert ys[1] > ys[0]  # lower rate, lower on the page


def test_bad_points_are_marked() -> None:
    svg = time_plot([(T0, 0.0), (T0 + 60, 3.0)], bad=lambda v: v > 0)
    classes = [c.get("class") for c in ET.fromstring(svg).findall(f"{SVG}circle")]
    assert classes == ["point", "point bad"]


def test_empty_plot_says_so_and_titles_are_escaped() -> None:
    svg = time_plot([], title="<script>alert(1)</script>")
    root = ET.fromstring(svg)
    assert root.get("data-points") == "0"
    assert root.find(f"{SVG}title").text == "<script>alert(1)</script>"  # type: ignore[union-attr]
    assert "<script>" not in svg and "no data yet" in svg


def test_single_point_and_scales() -> None:
    root = ET.fromstring(time_plot([(T0, 7.0)]))
    assert root.get("data-points") == "1" and not root.findall(f"{SVG}polyline")
    assert [nice_max(v) for v in (0, 1, 3, 7, 11, 240)] == [4, 4, 4, 8, 20, 400]
    assert rate_floor([0.95, 1.0], 0.999) == 0.9 and rate_floor([0.5], 0.999) == 0.0
    assert percent(0.9991) == "99.91%" and percent(1.0) == "100%"


def test_side_by_side_diff_marks_changed_lines_and_folds_equal_runs() -> None:
    left = "\n".join(f"line {i}" for i in range(20)) + "\nname: Cup"
    right = "\n".join(f"line {i}" for i in range(20)) + "\nname: <Mug>"
    html = side_by_side(left, right)
    assert (
        '<tr class="chg"><td class="l">name: Cup</td><td class="r">name: &lt;Mug&gt;</td>' in html
    )
    assert "16 equal lines" in html
    assert html.count('<tr class="eq">') == 4
