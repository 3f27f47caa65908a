"""Small server-rendered SVG line plots for the dashboard (no JavaScript, no fonts fetched).

    svg = time_plot(
        [(1764200000.0, 0.998), (1764200060.0, 1.0)],
        y_range=(0.0, 1.0), y_format=percent, threshold=0.999, title="match rate",
    )

Points are ``(unix seconds, value)``; ``None`` values leave a gap. The root element
carries ``data-points`` (how many values are plotted) so tests and scripts can read
it without parsing the drawing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

__all__ = ["Frame", "count", "nice_max", "percent", "rate_floor", "time_plot"]

Point = tuple[float, float | None]


@dataclass(frozen=True)
class Frame:
    """Size of the drawing and of the margins around the plotting area (px)."""

    width: int = 560
    height: int = 170
    left: int = 52
    right: int = 14
    top: int = 12
    bottom: int = 26

    @property
    def inner_width(self) -> int:
        return self.width - self.left - self.right

    @property
    def inner_height(self) -> int:
        return self.height - self.top - self.bottom


def percent(value: float) -> str:
    """``0.9991`` -> ``99.91%`` (two decimals only where they say something)."""
    text = f"{value * 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def count(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1 or value == 0 else f"{value:g}"


def nice_max(value: float) -> float:
    """The smallest of 4, 8, 20, 40, 80, 200, ... at or above ``value``: whole-number ticks."""
    top = 4.0
    while top < value:
        top *= 2.5 if str(int(top)).startswith("8") else 2
    return top


def rate_floor(values: list[float], threshold: float | None = None) -> float:
    """Lower end of a match-rate axis: 90% when every value is above it, else 0%."""
    lowest = min([*values, *([threshold] if threshold is not None else [])], default=1.0)
    return 0.9 if lowest >= 0.9 else 0.0


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M")


def time_plot(
    points: Sequence[Point],
    *,
    y_range: tuple[float, float] | None = None,
    y_format: Callable[[float], str] = count,
    threshold: float | None = None,
    title: str = "",
    frame: Frame = Frame(),
    bad: Callable[[float], bool] | None = None,
) -> str:
    """An SVG line plot of ``points`` over time, with y grid, time labels and markers.

    ``threshold`` draws a dashed reference line (a gate's value); ``bad(value)`` marks
    the points that fail it in the ``bad`` class.
    """
    values = [v for _, v in points if v is not None]
    low, high = y_range if y_range is not None else (0.0, nice_max(max(values, default=0.0)))
    if high <= low:
        high = low + 1.0
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" role="img" '
        f'viewBox="0 0 {frame.width} {frame.height}" preserveAspectRatio="xMidYMid meet" '
        f'data-points="{len(values)}"><title>{escape(title)}</title>'
    )
    parts = [head, *_grid(frame, low, high, y_format)]
    if not values:
        parts.append(
            _label(
                frame.left + frame.inner_width / 2,
                frame.top + frame.inner_height / 2,
                "no data yet",
                "empty",
                anchor="middle",
            )
        )
        return "".join([*parts, "</svg>"])
    times = [t for t, _ in points]
    start, end = min(times), max(times)
    span = end - start or 60.0

    def x(at: float) -> float:
        if end == start:
            return frame.left + frame.inner_width / 2
        return frame.left + (at - start) / span * frame.inner_width

    def y(value: float) -> float:
        clamped = min(max(value, low), high)
        return frame.top + (1 - (clamped - low) / (high - low)) * frame.inner_height

    if threshold is not None and low <= threshold <= high:
        parts.append(_hline(frame, y(threshold), "threshold"))
    parts.extend(_lines(points, x, y))
    for at, value in points:
        if value is None:
            continue
        css = "point bad" if bad is not None and bad(value) else "point"
        parts.append(
            f'<circle class="{css}" cx="{x(at):.1f}" cy="{y(value):.1f}" r="3">'
            f"<title>{escape(_clock(at))} UTC: {escape(y_format(value))}</title></circle>"
        )
    bottom = frame.height - 8
    parts.append(_label(frame.left, bottom, _clock(start), "axis", anchor="start"))
    if end != start:
        parts.append(
            _label(frame.width - frame.right, bottom, _clock(end) + " UTC", "axis", anchor="end")
        )
    return "".join([*parts, "</svg>"])


def _grid(frame: Frame, low: float, high: float, y_format: Callable[[float], str]) -> list[str]:
    parts = []
    for step in range(5):
        value = low + (high - low) * step / 4
        at = frame.top + (1 - step / 4) * frame.inner_height
        parts.append(_hline(frame, at, "grid"))
        parts.append(_label(frame.left - 6, at + 4, y_format(value), "axis", anchor="end"))
    return parts


def _hline(frame: Frame, at: float, css: str) -> str:
    return (
        f'<line class="{css}" x1="{frame.left}" x2="{frame.width - frame.right}" '
        f'y1="{at:.1f}" y2="{at:.1f}"/>'
    )


def _label(x: float, y: float, text: str, css: str, *, anchor: str) -> str:
    return (
        f'<text class="{css}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{escape(text)}</text>'
    )


def _lines(
    points: Sequence[Point], x: Callable[[float], float], y: Callable[[float], float]
) -> list[str]:
    """One polyline per run of known values (a None value breaks the line)."""
    runs: list[list[str]] = [[]]
    for at, value in points:
        if value is None:
            runs.append([])
        else:
            runs[-1].append(f"{x(at):.1f},{y(value):.1f}")
    return [
        f'<polyline class="line" fill="none" points="{" ".join(run)}"/>'
        for run in runs
        if len(run) > 1
    ]
