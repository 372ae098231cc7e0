"""Inline SVG line charts for the host page: no scripts, no fonts, nothing fetched."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from html import escape

COLORS = ("#c0392b", "#2471a3", "#7d3c98", "#1e8449", "#b9770e")
WIDTH, HEIGHT = 640, 180
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 52, 12, 26, 22

Series = dict[str, list[tuple[datetime, float | None]]]


def _nice_max(value: float) -> float:
    """A y-axis top whose four grid steps are round numbers (1, 2 or 5 x 10^n each)."""
    if value <= 0:
        return 4.0
    step = value / 4
    magnitude = 10 ** math.floor(math.log10(step))
    for factor in (1, 2, 5, 10):
        if step <= factor * magnitude:
            return 4 * factor * magnitude
    return 40 * magnitude


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def line_chart(title: str, series: Series, unit: str = "") -> str:
    """An SVG chart of one or more series over time; an empty chart says "no data"."""
    points = [(t, v) for values in series.values() for t, v in values if v is not None]
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'class="chart" role="img" aria-label="{escape(title)}">'
            f'<text x="{PAD_LEFT}" y="16" class="chart-title">{escape(title)}</text>')
    if not points:
        return head + f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" class="chart-empty">no data</text></svg>'
    t0 = min(t for t, _ in points).timestamp()
    t1 = max(max(t for t, _ in points).timestamp(), t0 + 1)
    ymax = _nice_max(max(v for _, v in points))
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM

    def xy(t: datetime, v: float) -> str:
        x = PAD_LEFT + (t.timestamp() - t0) / (t1 - t0) * plot_w
        y = PAD_TOP + plot_h - v / ymax * plot_h
        return f"{x:.1f},{y:.1f}"

    parts = [head, *_grid(ymax, unit, plot_w, plot_h), *_time_labels(t0, t1)]
    for i, (name, values) in enumerate(series.items()):
        coords = " ".join(xy(t, v) for t, v in values if v is not None)
        color = COLORS[i % len(COLORS)]
        if coords:
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>')
        parts.append(f'<text x="{WIDTH - PAD_RIGHT - 110 * (len(series) - i)}" y="16" '
                     f'fill="{color}" class="chart-legend">&#9632; {escape(name)}</text>')
    return "".join(parts) + "</svg>"


def _grid(ymax: float, unit: str, plot_w: float, plot_h: float) -> list[str]:
    lines = []
    for k in range(5):
        value = ymax * k / 4
        y = PAD_TOP + plot_h - plot_h * k / 4
        lines.append(f'<line x1="{PAD_LEFT}" x2="{PAD_LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'class="chart-grid"/>')
        lines.append(f'<text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
                     f'class="chart-axis">{_fmt(value)}{escape(unit)}</text>')
    return lines


def _time_labels(t0: float, t1: float) -> list[str]:
    fmt = "%H:%M" if t1 - t0 < 86400 else "%m-%d %H:%M"
    left = datetime.fromtimestamp(t0, timezone.utc).strftime(fmt)
    right = datetime.fromtimestamp(t1, timezone.utc).strftime(fmt) + " UTC"
    y = HEIGHT - 6
    return [f'<text x="{PAD_LEFT}" y="{y}" class="chart-axis">{left}</text>',
            f'<text x="{WIDTH - PAD_RIGHT}" y="{y}" text-anchor="end" class="chart-axis">{right}</text>']
