"""The report page (/v1/sessions/{id}/report.html): self-contained HTML, charts drawn here as
inline SVG, no script. It speaks to the person who had the conversation: user-facing words
("steady voice, a little fast"), the measurements behind them on hover (title)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from analysis.scoring import COMPONENTS, LABELS, emotion_label
from server.api.report_latency import voice_latency_html

_e = html.escape
CHART_W = 640
NO_DATA = "데이터 없음 · no data"
SCORE_COLORS = ((80, "#2e9d5b"), (60, "#4f7fd6"), (40, "#d89a2b"), (0, "#d0513e"))

# How a voice sounds, in the studio's words (static/i18n.js voice.*, the same thresholds as
# static/js/perception.js voiceWords): (upper bound, ko, en), first band below the bound.
INF = math.inf
PITCH_BANDS = (  # pitch spread in semitones
    (2.0, "차분한 목소리", "steady voice"),
    (4.0, "생기 있는 목소리", "lively voice"),
    (INF, "아주 활기찬 목소리", "very animated voice"),
)
RATE_BANDS = (  # words per second of speech
    (1.5, "느린 편", "slow"),
    (2.8, "편안한 속도", "an easy pace"),
    (3.5, "조금 빠른 편", "a little fast"),
    (INF, "빠른 편", "fast"),
)
MANY_PAUSES = (0.5, "쉼이 많음", "many pauses")  # share of pause time above which it is said
ENERGY_BANDS = ((0.35, "잔잔함", "calm"), (0.65, "보통", "moderate"), (INF, "힘참", "energetic"))
WARMTH_BANDS = ((0.35, "담담함", "reserved"), (0.65, "보통", "neutral"), (INF, "따뜻함", "warm"))
STATUS_WORDS = {
    "ended": "종료됨 · ended",
    "active": "진행 중 · live",
    "paused": "일시정지 · paused",
    "interrupted": "중단됨 · interrupted",
}


def _band(v: float, bands: Sequence[tuple[float, str, str]]) -> tuple[str, str]:
    return next((ko, en) for hi, ko, en in bands if v < hi)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def voice_words(u: dict[str, Any]) -> tuple[str, str] | None:
    """("차분한 목소리, 조금 빠른 편", "Steady voice, a little fast") from pitch spread, rate and
    pauses; None when none of them was measured."""
    parts: list[tuple[str, str]] = []
    if (pv := _num(u.get("pitch_var"))) is not None:
        parts.append(_band(pv, PITCH_BANDS))
    if (rate := _num(u.get("rate_wps"))) is not None and rate > 0:
        parts.append(_band(rate, RATE_BANDS))
    if (pause := _num(u.get("pause_ratio"))) is not None and pause > MANY_PAUSES[0]:
        parts.append(MANY_PAUSES[1:])
    if not parts:
        return None
    en = ", ".join(e for _, e in parts)
    return ", ".join(k for k, _ in parts), en[:1].upper() + en[1:]


def voice_numbers(u: dict[str, Any]) -> str:
    """The measurements behind the words, for the hover text."""
    out = []
    if (hz := _num(u.get("pitch_hz"))) is not None:
        out.append(f"pitch {hz:.0f} Hz")
    if (pv := _num(u.get("pitch_var"))) is not None:
        out.append(f"spread {pv:.1f} semitones")
    if (rate := _num(u.get("rate_wps"))) is not None:
        out.append(f"{rate:.1f} words/s")
    if (db := _num(u.get("volume_db"))) is not None:
        out.append(f"level {db:.0f} dBFS")
    if (pause := _num(u.get("pause_ratio"))) is not None:
        out.append(f"pauses {100 * pause:.0f}%")
    return ", ".join(out)


def _f(v: float) -> str:
    """Compact SVG coordinate."""
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _half_up(v: float) -> int:
    """Scores are shown rounded half up, as the summary quotes them (78.5 -> 79)."""
    return math.floor(v + 0.5)


def _score_color(v: float) -> str:
    return next(c for lo, c in SCORE_COLORS if v >= lo)


def _time_label(ms: float, span_ms: float) -> str:
    """Axis label: m:ss for spans of two minutes or more, else seconds."""
    if span_ms >= 120_000:
        s = max(0, round(ms / 1000))
        return f"{s // 60}:{s % 60:02d}"
    if span_ms >= 10_000:
        return f"{ms / 1000:.0f}s"
    return f"{ms / 1000:.1f}s"


def _when(iso: Any) -> str:
    """'2025-01-01 09:30 UTC' from an ISO timestamp (as given when it does not parse)."""
    try:
        t = datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso)
    return t.strftime("%Y-%m-%d %H:%M ") + (t.tzname() or "")


def _no_data_svg(chart_id: str, label: str, height: int = 60) -> str:
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
            f'fill="{_score_color(float(v))}" data-score="{key}"/>'
            f'<text x="{left + bar_w + 8}" y="{y + 17}" font-weight="{weight}">'
            f"{_half_up(float(v))}</text>"
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
        return _no_data_svg(chart_id, label)
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
        return _no_data_svg("chart-emotions", "emotion distribution")
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


def voice_charts_svg(voice: list[dict[str, Any]]) -> str:
    """Per utterance: how the voice sounded in words, then how lively and how fast, with the
    measurements on hover."""
    if not voice:
        return _no_data_svg("chart-voice", "voice per utterance")
    labels = [f"#{i + 1}" for i in range(len(voice))]
    hover = [f"{labels[i]}: {voice_numbers(u)}" for i, u in enumerate(voice)]
    items = []
    for i, u in enumerate(voice):
        ko, en = voice_words(u) or ("측정되지 않음", "not measured")
        items.append(
            f'<li title="{_e(hover[i])}" data-utterance="{i + 1}">{labels[i]} {_e(ko)} '
            f'<span class="muted">{_e(en)}</span></li>'
        )
    lively = [(float(i), _num(u.get("pitch_var"))) for i, u in enumerate(voice)]
    rate = [(float(i), _num(u.get("rate_wps"))) for i, u in enumerate(voice)]
    known_rate = [r for _, r in rate if r is not None]
    r_hi = max(4.5, math.ceil(max(known_rate))) if known_rate else 4.5
    charts = (
        ("chart-voice-pitch", "목소리의 생기", "How lively the voice was", lively, 6.0, "#8a5cd6",
         [(0.0, "차분 steady"), (2.0, "생기 lively"), (4.0, "활기 animated")]),
        ("chart-voice-rate", "말 속도", "Speaking pace", rate, r_hi, "#2e9d5b",
         [(0.0, "느림 slow"), (1.5, "편안 easy"), (2.8, "조금 빠름 brisk"), (3.5, "빠름 fast")]),
    )  # fmt: skip
    out = [f'<div id="chart-voice"><ol class="utterances">{"".join(items)}</ol>']
    for chart_id, ko, en, points, top, color, words in charts:
        out.append(f'<h3>{ko} <span class="muted">{en}</span></h3>')
        out.append(
            line_chart_svg(
                chart_id,
                f"{en.lower()}, per utterance",
                points,
                (0.0, top),
                x_labels=labels,
                color=color,
                height=170,
                dots=True,
                y_words=words,
                hover=hover,
            )
        )
    return "".join(out) + "</div>"


METRIC_LABELS: tuple[tuple[str, str, str], ...] = (
    ("user_turns", "사용자 발화 수", "user turns"),
    ("user_questions", "질문 수", "questions asked"),
    ("user_words_per_turn", "발화당 단어 수", "words per turn"),
    ("positive_words", "긍정 표현", "positive expressions"),
    ("negative_words", "부정 표현", "negative expressions"),
    ("empathetic_words", "공감 표현", "empathetic expressions"),
    ("polite_words", "공손 표현", "polite expressions"),
    ("mean_concentration", "평균 집중도", "mean concentration"),
    ("gaze_on_screen_ratio", "화면 응시 비율", "gaze on screen"),
    ("blink_rate_per_min", "분당 눈 깜빡임", "blinks per minute"),
    ("mean_posture_score", "평균 자세 점수", "mean posture score"),
    ("dominant_emotion", "주된 표정", "dominant expression"),
    ("voice", "목소리", "voice"),
    ("mean_energy", "목소리 에너지", "voice energy"),
    ("mean_warmth", "목소리 따뜻함", "voice warmth"),
)


def _metric_cell(key: str, metrics: dict[str, Any]) -> tuple[str, str]:
    """(what the table shows, the number behind it on hover)."""
    if key == "voice":  # the session's mean voice, in words
        mean = {
            "pitch_var": metrics.get("mean_pitch_var_st"),
            "rate_wps": metrics.get("mean_rate_wps"),
        }
        words = voice_words(mean)
        numbers = voice_numbers(mean | {"pitch_hz": metrics.get("mean_pitch_hz")})
        return (f"{words[0]} · {words[1]}" if words else "—"), numbers
    v = metrics.get(key)
    if v is None:
        return "—", ""
    if key in ("mean_energy", "mean_warmth") and (x := _num(v)) is not None:
        ko, en = _band(x, ENERGY_BANDS if key == "mean_energy" else WARMTH_BANDS)
        return f"{ko} · {en}", f"{x:.2f} (0-1)"
    if key == "gaze_on_screen_ratio":
        return f"{100 * float(v):.0f}%", ""
    if key == "dominant_emotion":
        return emotion_label(str(v)), ""
    if isinstance(v, float):
        return f"{v:.2f}".rstrip("0").rstrip("."), ""
    return str(v), ""


STYLE = """
:root { color-scheme: light dark; --fg:#1d2330; --bg:#f6f7fb; --card:#fff; --muted:#6b7385;
  --grid:#e3e6ee; --track:#eceff5; }
@media (prefers-color-scheme: dark) { :root { --fg:#e6e9f0; --bg:#14171e; --card:#1d2129;
  --muted:#9aa3b5; --grid:#2c313c; --track:#2a2f39; } }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.55 system-ui, "Apple SD Gothic Neo", "Noto Sans KR", sans-serif;
  color:var(--fg); background:var(--bg); }
main { max-width: 760px; margin: 0 auto; padding: 24px 16px 48px; }
h1 { font-size: 1.5rem; margin: 0 0 4px; } h2 { font-size: 1.1rem; margin: 0 0 12px; }
h3 { font-size: .95rem; margin: 12px 0 4px; }
section { background:var(--card); border-radius: 12px; padding: 16px 18px; margin: 16px 0;
  box-shadow: 0 1px 3px rgba(0,0,0,.08); }
.muted, svg .muted { color:var(--muted); fill:var(--muted); font-weight: normal; }
.total { font-size: 3rem; font-weight: 700; line-height: 1; }
.meta { color:var(--muted); font-size: .85rem; }
svg { display:block; font-size: 13px; fill: var(--fg); }
svg .axis { fill:var(--muted); font-size: 11px; } svg .grid { stroke:var(--grid); }
svg .track { fill:var(--track); }
.emo { fill:#9aa3b5; } .emo-happiness { fill:#f0b429; } .emo-surprise { fill:#4fb6d6; }
.emo-neutral { fill:#9aa3b5; } .emo-sadness { fill:#5b7fd6; } .emo-anger { fill:#d0513e; }
.emo-fear { fill:#8a5cd6; } .emo-disgust { fill:#5c9e4f; } .emo-contempt { fill:#b0764a; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
td { padding: 4px 6px; border-bottom: 1px solid var(--grid); }
td:last-child { text-align: right; font-variant-numeric: tabular-nums; }
p.summary { margin: 6px 0; }
ol.utterances { margin: 0 0 8px; padding-left: 0; list-style: none; }
ol.utterances li { padding: 2px 0; cursor: help; }
td[title], div.meta[title] { cursor: help; }
"""


def render_report_html(report: dict[str, Any]) -> str:
    """The report page: every value that could hold user text goes through html.escape."""
    scores = report.get("scores") or {}
    summary = report.get("summary") or {}
    timelines = report.get("timelines") or {}
    metrics = report.get("metrics") or {}
    persona = report.get("persona") or {}
    total = scores.get("total")
    total_html = (
        f'<div class="total" style="color:{_score_color(float(total))}">{_half_up(float(total))}'
        '<span class="muted" style="font-size:1rem"> / 100</span></div>'
        if total is not None
        else f'<div class="total muted" style="font-size:1.2rem">{NO_DATA}</div>'
    )
    conc = [(float(p["t_ms"]), p.get("value")) for p in timelines.get("concentration") or []]
    cells = {key: _metric_cell(key, metrics) for key, _, _ in METRIC_LABELS}
    rows = "".join(
        f"<tr><td>{_e(ko)} <span class='muted'>{_e(en)}</span></td>"
        f'<td data-metric="{key}"'
        + (f' title="{_e(cells[key][1])}"' if cells[key][1] else "")
        + f">{_e(cells[key][0])}</td></tr>"
        for key, ko, en in METRIC_LABELS
    )
    counts = report.get("counts") or {}
    status = report.get("status")
    meta = " · ".join(
        _e(str(x))
        for x in (
            report.get("started_at") and _when(report["started_at"]),
            STATUS_WORDS.get(str(status), status),
            f"메시지 {counts.get('messages', 0)}개 · {counts.get('messages', 0)} messages",
        )
        if x
    )
    samples = (
        f"face readings {counts.get('face_samples', 0)}, "
        f"voice readings {counts.get('voice_samples', 0)}"
    )
    title = f"세션 리포트 · Session report — {persona.get('name') or persona.get('id') or ''}"
    return f"""<!doctype html>
<html lang="ko">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<main>
<h1>{_e(title)}</h1>
<div class="meta" title="{_e(samples)}">{meta}</div>
<section id="total">
<h2>종합 점수 <span class="muted">Total score</span></h2>
{total_html}
</section>
<section id="summary">
<h2>요약 <span class="muted">Summary</span></h2>
<p class="summary" lang="ko">{_e(str(summary.get("ko", "")))}</p>
<p class="summary" lang="en">{_e(str(summary.get("en", "")))}</p>
</section>
<section id="scores">
<h2>항목별 점수 <span class="muted">Scores</span></h2>
{score_bars_svg(scores)}
</section>
<section id="concentration">
<h2>집중도 변화 <span class="muted">Concentration over time</span></h2>
{line_chart_svg("chart-concentration", "concentration over time", conc, (0, 100))}
</section>
<section id="emotions">
<h2>표정 분포 <span class="muted">Expression distribution</span></h2>
{emotion_bars_svg(timelines.get("emotion_distribution") or {})}
</section>
<section id="voice">
<h2>발화별 목소리 <span class="muted">Voice per utterance</span></h2>
{voice_charts_svg(list(timelines.get("voice") or []))}
</section>
<section id="latency">
<h2>응답 속도 <span class="muted">How quickly the companion answered</span></h2>
{voice_latency_html(report.get("voice_latency") or {})}
</section>
<section id="metrics">
<h2>세부 지표 <span class="muted">Details</span></h2>
<table>{rows}</table>
</section>
</main>
</body>
</html>
"""
