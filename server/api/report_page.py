"""The report page (/v1/sessions/{id}/report.html): self-contained HTML, charts drawn as
inline SVG (report_charts.py, report_voice.py), no script. It speaks to the person who had
the conversation: user-facing words ("steady voice, a little fast"), the measurements behind
them on hover (title)."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from analysis.report_text import emotion_label
from server.api.report_charts import (
    NO_DATA,
    emotion_bars_svg,
    half_up,
    line_chart_svg,
    score_bars_svg,
    score_color,
)
from server.api.report_latency import voice_latency_html
from server.api.report_voice import (
    ENERGY_BANDS,
    WARMTH_BANDS,
    band,
    num,
    voice_charts_svg,
    voice_numbers,
    voice_words,
)

_e = html.escape
STATUS_WORDS = {
    "ended": "종료됨 · ended",
    "active": "진행 중 · live",
    "paused": "일시정지 · paused",
    "interrupted": "중단됨 · interrupted",
}


def _when(iso: Any) -> str:
    """'2025-01-01 09:30 UTC' from an ISO timestamp (as given when it does not parse)."""
    try:
        t = datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso)
    return t.strftime("%Y-%m-%d %H:%M ") + (t.tzname() or "")


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
    if key in ("mean_energy", "mean_warmth") and (x := num(v)) is not None:
        ko, en = band(x, ENERGY_BANDS if key == "mean_energy" else WARMTH_BANDS)
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
        f'<div class="total" style="color:{score_color(float(total))}">{half_up(float(total))}'
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
