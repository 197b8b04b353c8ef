"""The report page's "how quickly the companion answered" section: for each step from the
end of the user's speech to the first reply audio they heard, the session's p50 / p95
(`voice_latency` of the JSON report, docs/protocol.md "Voice latency")."""

from __future__ import annotations

import html
from typing import Any

_e = html.escape

# (key of voice_latency, Korean, English), in the order the steps happen
STEP_LABELS: tuple[tuple[str, str, str], ...] = (
    ("eos_to_turn_ms", "말이 끝났다는 판단", "end of turn decided"),
    ("eos_to_transcript_ms", "받아쓰기 완료", "final transcript"),
    ("eos_to_llm_ms", "답변 요청", "reply requested"),
    ("eos_to_first_token_ms", "첫 단어", "first word"),
    ("eos_to_first_audio_ms", "첫 음성 전송", "first audio sent"),
    ("eos_to_played_ms", "첫 음성 재생", "first audio played"),
)


def _ms(v: Any) -> str:
    return "—" if not isinstance(v, int | float) else f"{v:.0f} ms"


def voice_latency_html(latency: dict[str, Any]) -> str:
    """One row per step: p50 (p95 and the number of turns on hover); a line saying there
    were no voice turns when there were none."""
    rows = []
    for key, ko, en in STEP_LABELS:
        step = latency.get(key) or {}
        if not step.get("n"):
            continue
        hover = f"p50 {_ms(step.get('p50'))}, p95 {_ms(step.get('p95'))}, {step['n']} turns"
        rows.append(
            f"<tr><td>{_e(ko)} <span class='muted'>{_e(en)}</span></td>"
            f'<td data-step="{key}" title="{_e(hover)}">{_ms(step.get("p50"))}'
            f" <span class='muted'>(p95 {_ms(step.get('p95'))})</span></td></tr>"
        )
    if not rows:
        return '<p class="muted">음성 대화 없음 · no voice turns</p>'
    note = (
        '<p class="meta">말을 마친 때부터 · from the end of your speech, '
        "median (95th percentile)</p>"
    )
    return f"{note}<table>{''.join(rows)}</table>"
