"""The report page's charts, drawn as inline SVG (no script): the score bars, a line chart
with words on its axis and the measurements on hover, the expression bars."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from analysis.report_model import COMPONENTS, LABELS
from analysis.report_text import emotion_label

_e = html.escape

CHART_W = 640
NO_DATA = "데이터 없음 · no data"
SCORE_COLORS = ((80, "#2e9d5b"), (60, "#4f7fd6"), (40, "#d89a2b"), (0, "#d0513e"))


def _f(v: float) -> str:
    """Compact SVG coordinate."""
    return f"{v:.1f}".rstrip("0").rstrip(".")


def half_up(v: float) -> int:
    """Scores are shown rounded half up, as the summary quotes them (78.5 -> 79)."""
    return math.floor(v + 0.5)


def score_color(v: float) -> str:
    return next(c for lo, c in SCORE_COLORS if v >= lo)


def _time_label(ms: float, span_ms: float) -> str:
    """Axis label: m:ss for spans of two minutes or more, else seconds."""
    if span_ms >= 120_000:
        s = max(0, round(ms / 1000))
        return f"{s // 60}:{s % 60:02d}"
    if span_ms >= 10_000:
        return f"{ms / 1000:.0f}s"
    return f"{ms / 1000:.1f}s"


def no_data_svg(chart_id: str, label: str, height: int = 60) -> str:
    return (
        f'<svg class="chart" id="{chart_id}" role="img" aria-label="{_e(label)}: no data" '
        f'viewBox="0 0 {CHART_W} {height}" width="100%">'
        f'<text x="{CHART_W // 2}" y="{height // 2 + 5}" text-anchor="middle" class="muted">'
        f"{NO_DATA}</text></svg>"
    )


def score_bars_svg(scores: dict[str, Any]) -> str:
    rows = [*COMPONENTS, "total"]
    row_h, left, bar_w = 30, 170, CHART_W - 170 - 60
    h = row_h * len(rows) + 10
    parts = [
        f'<svg class="chart" id="chart-scores" role="img" aria-label="scores" '
        f'viewBox="0 0 {CHART_W} {h}" width="100%">'
    ]
    for i, key in enumerate(rows):
        y = 8 + i * row_h
        ko, en = LABELS[key]
        weight = "bold" if key == "total" else "normal"
        parts.append(
            f'<text x="{left - 10}" y="{y + 17}" text-anchor="end" font-weight="{weight}">'
            f'{_e(ko)} <tspan class="muted">{_e(en)}</tspan></text>'
            f'<rect x="{left}" y="{y + 4}" width="{bar_w}" height="18" rx="4" class="track"/>'
        )
        v = scores.get(key)
        if v is None:
            parts.append(
                f'<text x="{left + 8}" y="{y + 17}" class="muted" data-score="{key}">'
                f"{NO_DATA}</text>"
            )
            continue
        w = bar_w * max(0.0, min(100.0, float(v))) / 100
        parts.append(
            f'<rect x="{left}" y="{y + 4}" width="{_f(w)}" height="18" rx="4" '
            f'fill="{score_color(float(v))}" data-score="{key}"/>'
            f'<text x="{left + bar_w + 8}" y="{y + 17}" font-weight="{weight}">'
            f"{half_up(float(v))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def line_chart_svg(
    chart_id: str,
    label: str,
    points: Sequence[tuple[float, float | None]],
    y_range: tuple[float, float],
    *,
    x_labels: Sequence[str] | None = None,
    color: str = "#4f7fd6",
    height: int = 200,
    unit: str = "",
    dots: bool = False,
    y_words: Sequence[tuple[float, str]] | None = None,
    hover: Sequence[str] | None = None,
) -> str:
    """A line over (x, y) points (y None breaks the line). x is time in ms unless
    ``x_labels`` gives a category label per point. ``y_words`` labels the y axis in words
    instead of numbers; ``hover`` is each point's hover text (its measurements)."""
    known = [(x, y) for x, y in points if y is not None]
    if not known:
        return no_data_svg(chart_id, label)
    left, right, top, bottom = (48 if y_words is None else 150), 12, 10, 26
    pw, ph = CHART_W - left - right, height - top - bottom
    y0, y1 = y_range
    xs = [x for x, _ in points]
    x0, x1 = min(xs), max(xs)
    span = (x1 - x0) or 1.0

    def px(x: float) -> float:
        return left + (pw * (x - x0) / span if len(points) > 1 else pw / 2)

    def py(y: float) -> float:
        return top + ph * (1 - (min(max(y, y0), y1) - y0) / ((y1 - y0) or 1.0))

    out = [
        f'<svg class="chart" id="{chart_id}" role="img" aria-label="{_e(label)}" '
        f'viewBox="0 0 {CHART_W} {height}" width="100%">'
    ]
    grid = y_words or [
        (y0 + (y1 - y0) * i / 4, f"{y0 + (y1 - y0) * i / 4:.0f}{unit}") for i in range(5)
    ]
    for yv, text in grid:
        yy = py(yv)
        out.append(
            f'<line x1="{left}" x2="{CHART_W - right}" y1="{_f(yy)}" y2="{_f(yy)}" class="grid"/>'
            f'<text x="{left - 6}" y="{_f(yy + 4)}" text-anchor="end" class="axis">'
            f"{_e(text)}</text>"
        )
    if x_labels is not None:
        step = max(1, math.ceil(len(points) / 10))
        ticks = [(px(x), x_labels[i]) for i, (x, _) in enumerate(points) if i % step == 0]
    else:
        ticks = [(px(x0 + span * i / 4), _time_label(x0 + span * i / 4, span)) for i in range(5)]
    for tx, text in ticks:
        out.append(
            f'<text x="{_f(tx)}" y="{height - 8}" text-anchor="middle" class="axis">'
            f"{_e(text)}</text>"
        )
    runs: list[list[str]] = [[]]
    for x, y in points:
        if y is None:
            runs.append([])
        else:
            runs[-1].append(f"{_f(px(x))},{_f(py(y))}")
    for run in runs:
        if len(run) > 1:
            out.append(
                f'<polyline points="{" ".join(run)}" fill="none" stroke="{color}" '
                'stroke-width="2" stroke-linejoin="round"/>'
            )
    if dots or len(known) == 1:
        for i, (x, y) in enumerate(points):
            if y is None:
                continue
            tip = f"<title>{_e(hover[i])}</title>" if hover and hover[i] else ""
            out.append(
                f'<circle cx="{_f(px(x))}" cy="{_f(py(y))}" r="4" fill="{color}">{tip}</circle>'
            )
    out.append("</svg>")
    return "".join(out)


def emotion_bars_svg(distribution: dict[str, float]) -> str:
    if not distribution:
        return no_data_svg("chart-emotions", "emotion distribution")
    height, top, bottom = 220, 20, 44
    n = len(distribution)
    slot = CHART_W / n
    ph = height - top - bottom
    out = [
        '<svg class="chart" id="chart-emotions" role="img" aria-label="emotion distribution" '
        f'viewBox="0 0 {CHART_W} {height}" width="100%">'
    ]
    for i, (name, share) in enumerate(distribution.items()):
        cx = slot * i + slot / 2
        bh = ph * max(0.0, min(1.0, float(share)))
        ko, en = emotion_label(name).split(" ", 1)
        out.append(
            f'<rect x="{_f(cx - slot * 0.3)}" y="{_f(top + ph - bh)}" width="{_f(slot * 0.6)}" '
            f'height="{_f(bh)}" rx="3" class="emo emo-{_e(name)}" data-emotion="{_e(name)}"/>'
            f'<text x="{_f(cx)}" y="{_f(top + ph - bh - 5)}" text-anchor="middle" class="axis">'
            f"{100 * float(share):.0f}%</text>"
            f'<text x="{_f(cx)}" y="{height - 24}" text-anchor="middle">{_e(ko)}</text>'
            f'<text x="{_f(cx)}" y="{height - 8}" text-anchor="middle" class="axis">{_e(en)}</text>'
        )
    out.append("</svg>")
    return "".join(out)
