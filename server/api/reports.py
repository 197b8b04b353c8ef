"""The after-session feedback report: GET /v1/sessions/{id}/report (JSON) and
/v1/sessions/{id}/report.html (a self-contained page, charts drawn here as inline SVG).

Scores come from analysis.scoring on the session's stored messages and face/voice
timelines. A report is cached in the store once the session has ended and settled (the
hub's last timeline writes land right after ``ended_at``); before that it is recomputed on
every request, so a live session's report follows the conversation.
"""

from __future__ import annotations

import asyncio
import html
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from analysis.scoring import (
    COMPONENTS,
    LABELS,
    REPORT_VERSION,
    emotion_label,
    score_session,
    seed_feedback,
)
from server.api.deps import ServicesDep, UserDep
from server.services import Services
from server.store.base import MessageRecord, SessionRecord, utcnow

router = APIRouter(prefix="/v1/sessions", tags=["reports"])

SETTLE_S = 10.0  # an ended session is cached once its end is this old (voice drain is 5 s)
MESSAGE_PAGE = 500
MAX_FACE_SAMPLES = 50_000  # ~14 h at the default 1 sample/s
MAX_VOICE_SAMPLES = 10_000
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'"
)


# --------------------------------------------------------------------------- data


async def _messages(services: Services, user: str, session_id: str) -> list[MessageRecord]:
    out: list[MessageRecord] = []
    while True:
        page = await services.store.list_messages(
            user, session_id, limit=MESSAGE_PAGE, offset=len(out)
        )
        out.extend(page)
        if len(page) < MESSAGE_PAGE:
            return out


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


async def compute_report(services: Services, user: str, rec: SessionRecord) -> dict[str, Any]:
    """Score the session from the store now (scoring runs in a worker thread)."""
    store = services.store
    msgs, face, voice = await asyncio.gather(
        _messages(services, user, rec.id),
        store.list_samples(user, rec.id, kind="face", limit=MAX_FACE_SAMPLES),
        store.list_samples(user, rec.id, kind="voice", limit=MAX_VOICE_SAMPLES),
    )
    report = await asyncio.to_thread(score_session, msgs, face, voice)
    persona = services.personas.get(rec.persona_id)
    now = utcnow()
    return {
        "session_id": rec.id,
        "user_id": user,
        "persona": {"id": rec.persona_id, "name": persona.name if persona else rec.persona_id},
        "status": rec.status,
        "started_at": _iso(rec.started_at),
        "ended_at": _iso(rec.ended_at),
        "generated_at": now.isoformat(),
        "created_at": now.timestamp(),  # seed 003: epoch seconds
        "html_url": f"/v1/sessions/{rec.id}/report.html",
        **report.to_dict(),
        "feedback": seed_feedback(report),
    }


def _settled(rec: SessionRecord) -> bool:
    if rec.status != "ended" or rec.ended_at is None:
        return False
    return (utcnow() - rec.ended_at).total_seconds() >= SETTLE_S


async def get_report(services: Services, user: str, session_id: str) -> dict[str, Any]:
    """The cached report of a settled ended session, else a fresh one; 404 when the
    session is unknown or another user's (the store filters by user)."""
    rec = await services.store.get_session(user, session_id)
    if rec is None:
        raise HTTPException(404, "No such session for this user.")
    if rec.status == "ended":
        cached = await services.store.get_report(user, session_id)
        if cached is not None and cached.get("version") == REPORT_VERSION:
            return cached | {"cached": True}
    report = await compute_report(services, user, rec)
    if _settled(rec):
        await services.store.put_report(user, session_id, report)
    return report | {"cached": False}


def _wants_html(request: Request) -> bool:
    """A browser navigating to report_url asks for text/html; API clients get JSON."""
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


# --------------------------------------------------------------------------- routes


@router.get(
    "/{session_id}/report",
    summary="The session's feedback report (JSON; HTML for browsers asking for text/html)",
    responses={404: {"description": "No such session for this user."}},
)
async def report_json(
    session_id: str, request: Request, services: ServicesDep, user: UserDep
) -> Response:
    report = await get_report(services, user, session_id)
    headers = {"Vary": "Accept", "Cache-Control": "no-store"}
    if _wants_html(request):
        return HTMLResponse(
            render_report_html(report), headers=headers | {"Content-Security-Policy": CSP}
        )
    return JSONResponse(report, headers=headers)


@router.get(
    "/{session_id}/report.html",
    summary="The session's feedback report as a page with charts",
    response_class=HTMLResponse,
    responses={404: {"description": "No such session for this user."}},
)
async def report_html(session_id: str, services: ServicesDep, user: UserDep) -> HTMLResponse:
    report = await get_report(services, user, session_id)
    return HTMLResponse(
        render_report_html(report),
        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"},
    )


# --------------------------------------------------------------------------- HTML

_e = html.escape
CHART_W = 640
NO_DATA = "데이터 없음 · no data"
SCORE_COLORS = ((80, "#2e9d5b"), (60, "#4f7fd6"), (40, "#d89a2b"), (0, "#d0513e"))


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
) -> str:
    """A line over (x, y) points (y None breaks the line). x is time in ms unless
    ``x_labels`` gives a category label per point."""
    known = [(x, y) for x, y in points if y is not None]
    if not known:
        return _no_data_svg(chart_id, label)
    left, right, top, bottom = 48, 12, 10, 26
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
    for i in range(5):  # y grid
        yv = y0 + (y1 - y0) * i / 4
        yy = py(yv)
        out.append(
            f'<line x1="{left}" x2="{CHART_W - right}" y1="{_f(yy)}" y2="{_f(yy)}" class="grid"/>'
            f'<text x="{left - 6}" y="{_f(yy + 4)}" text-anchor="end" class="axis">'
            f"{yv:.0f}{_e(unit)}</text>"
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
        for x, y in known:
            out.append(f'<circle cx="{_f(px(x))}" cy="{_f(py(y))}" r="3.5" fill="{color}"/>')
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
    """Per-utterance pitch and speaking rate, one point per user utterance."""
    if not voice:
        return _no_data_svg("chart-voice", "voice per utterance")
    labels = [f"#{i + 1}" for i in range(len(voice))]
    pitch = [(float(i), u.get("pitch_hz")) for i, u in enumerate(voice)]
    rate = [(float(i), u.get("rate_wps")) for i, u in enumerate(voice)]
    known_pitch = [p for _, p in pitch if p is not None]
    p_lo = 50 * math.floor((min(known_pitch) - 20) / 50) if known_pitch else 0
    p_hi = 50 * math.ceil((max(known_pitch) + 20) / 50) if known_pitch else 400
    known_rate = [r for _, r in rate if r is not None]
    r_hi = max(4.0, math.ceil(max(known_rate))) if known_rate else 4.0
    return (
        '<div id="chart-voice">'
        '<h3>음높이 <span class="muted">pitch (Hz)</span></h3>'
        + line_chart_svg(
            "chart-voice-pitch",
            "pitch per utterance",
            pitch,
            (max(0, p_lo), p_hi),
            x_labels=labels,
            color="#8a5cd6",
            height=170,
            dots=True,
        )
        + '<h3>말 속도 <span class="muted">speaking rate (words/s)</span></h3>'
        + line_chart_svg(
            "chart-voice-rate",
            "speaking rate per utterance",
            rate,
            (0.0, r_hi),
            x_labels=labels,
            color="#2e9d5b",
            height=170,
            dots=True,
        )
        + "</div>"
    )


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
    ("mean_pitch_hz", "평균 음높이 (Hz)", "mean pitch (Hz)"),
    ("mean_rate_wps", "평균 말 속도 (단어/초)", "mean rate (words/s)"),
    ("mean_energy", "목소리 에너지", "voice energy"),
    ("mean_warmth", "목소리 따뜻함", "voice warmth"),
)


def _metric_value(key: str, v: Any) -> str:
    if v is None:
        return "—"
    if key == "gaze_on_screen_ratio":
        return f"{100 * float(v):.0f}%"
    if key == "dominant_emotion":
        return emotion_label(str(v))
    if isinstance(v, float):
        return f"{v:.2f}".rstrip("0").rstrip(".")
    return str(v)


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
    rows = "".join(
        f"<tr><td>{_e(ko)} <span class='muted'>{_e(en)}</span></td>"
        f"<td>{_e(_metric_value(key, metrics.get(key)))}</td></tr>"
        for key, ko, en in METRIC_LABELS
    )
    counts = report.get("counts") or {}
    meta = " · ".join(
        _e(str(x))
        for x in (
            report.get("started_at") and _when(report["started_at"]),
            report.get("status"),
            f"messages {counts.get('messages', 0)}, face samples {counts.get('face_samples', 0)}"
            f", voice samples {counts.get('voice_samples', 0)}",
        )
        if x
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
<div class="meta">{meta}</div>
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
<section id="metrics">
<h2>세부 지표 <span class="muted">Details</span></h2>
<table>{rows}</table>
</section>
</main>
</body>
</html>
"""
