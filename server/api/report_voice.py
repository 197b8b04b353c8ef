"""The voice on the report page in the user's words ("steady voice, a little fast"), with
the measurements behind them, and its per-utterance charts."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from server.api.report_charts import line_chart_svg, no_data_svg

_e = html.escape

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


def band(v: float, bands: Sequence[tuple[float, str, str]]) -> tuple[str, str]:
    return next((ko, en) for hi, ko, en in bands if v < hi)


def num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def voice_words(u: dict[str, Any]) -> tuple[str, str] | None:
    """("차분한 목소리, 조금 빠른 편", "Steady voice, a little fast") from pitch spread, rate and
    pauses; None when none of them was measured."""
    parts: list[tuple[str, str]] = []
    if (pv := num(u.get("pitch_var"))) is not None:
        parts.append(band(pv, PITCH_BANDS))
    if (rate := num(u.get("rate_wps"))) is not None and rate > 0:
        parts.append(band(rate, RATE_BANDS))
    if (pause := num(u.get("pause_ratio"))) is not None and pause > MANY_PAUSES[0]:
        parts.append(MANY_PAUSES[1:])
    if not parts:
        return None
    en = ", ".join(e for _, e in parts)
    return ", ".join(k for k, _ in parts), en[:1].upper() + en[1:]


def voice_numbers(u: dict[str, Any]) -> str:
    """The measurements behind the words, for the hover text."""
    out = []
    if (hz := num(u.get("pitch_hz"))) is not None:
        out.append(f"pitch {hz:.0f} Hz")
    if (pv := num(u.get("pitch_var"))) is not None:
        out.append(f"spread {pv:.1f} semitones")
    if (rate := num(u.get("rate_wps"))) is not None:
        out.append(f"{rate:.1f} words/s")
    if (db := num(u.get("volume_db"))) is not None:
        out.append(f"level {db:.0f} dBFS")
    if (pause := num(u.get("pause_ratio"))) is not None:
        out.append(f"pauses {100 * pause:.0f}%")
    return ", ".join(out)


def voice_charts_svg(voice: list[dict[str, Any]]) -> str:
    """Per utterance: how the voice sounded in words, then how lively and how fast, with the
    measurements on hover."""
    if not voice:
        return no_data_svg("chart-voice", "voice per utterance")
    labels = [f"#{i + 1}" for i in range(len(voice))]
    hover = [f"{labels[i]}: {voice_numbers(u)}" for i, u in enumerate(voice)]
    items = []
    for i, u in enumerate(voice):
        ko, en = voice_words(u) or ("측정되지 않음", "not measured")
        items.append(
            f'<li title="{_e(hover[i])}" data-utterance="{i + 1}">{labels[i]} {_e(ko)} '
            f'<span class="muted">{_e(en)}</span></li>'
        )
    lively = [(float(i), num(u.get("pitch_var"))) for i, u in enumerate(voice)]
    rate = [(float(i), num(u.get("rate_wps"))) for i, u in enumerate(voice)]
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
