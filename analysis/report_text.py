"""The report's human text: the rule-based summary in Korean and English, seed 003's
feedback object, and the emotion labels the charts show.

Deterministic rules, no language model (docs/analysis.md, "Summary").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from analysis.face.expression import EMOTION_KO
from analysis.report_model import (
    BLINK_HEALTHY,
    COMPONENTS,
    LABELS,
    MIN_FACE_SPAN_S,
    MIN_USER_TURNS,
    MIN_USER_WORDS,
    Scores,
    SessionReport,
    Summary,
)

STRENGTH_MIN = 70.0  # components at least this good are named as strengths
SUGGEST_BELOW = 80.0  # the weakest component gets a suggestion when under this


def _level(total: float) -> tuple[str, str]:
    if total >= 80:
        return "매우 좋아요", "excellent"
    if total >= 60:
        return "좋아요", "good"
    if total >= 40:
        return "보통이에요", "fair"
    return "개선이 필요해요", "needs work"


def _n(v: float) -> int:
    """Half-up rounding for the numbers quoted in sentences (79.5 -> 80, like people do)."""
    return math.floor(v + 0.5)


TIPS: dict[str, dict[str, tuple[str, str]]] = {  # component -> weakest part -> (ko, en)
    "likability": {
        "voice_warmth": (
            "조금 더 부드럽고 여유 있는 목소리로 말해 보세요.",
            "Speak a little more gently and unhurriedly.",
        ),
        "kind_words": (
            "감사나 공감 표현을 조금 더 써 보세요.",
            "Use a few more words of thanks and empathy.",
        ),
        "smile": (
            "어울릴 때 자연스럽게 미소를 지어 보세요.",
            "Smile when it fits; it makes you more approachable.",
        ),
    },
    "initiative": {
        "not_just_answers": (
            "대답만 하기보다 먼저 화제를 꺼내 보세요.",
            "Don't only answer: bring up topics of your own.",
        ),
        "questions": ("상대에게 질문을 조금 더 던져 보세요.", "Ask your partner more questions."),
        "length": (
            "한두 단어보다 조금 더 길게, 생각을 덧붙여 말해 보세요.",
            "Say more than a word or two: add your own thoughts.",
        ),
    },
    "tone": {
        "energy": (
            "목소리에 조금 더 힘을 실어 또렷하게 말해 보세요.",
            "Speak a little louder and with more energy.",
        ),
        "pitch_liveliness": (
            "억양을 살려 단조롭지 않게 말해 보세요.",
            "Vary your intonation so you don't sound monotone.",
        ),
        "volume_steadiness": (
            "목소리 크기를 일정하게 유지해 보세요.",
            "Keep your volume steady from one sentence to the next.",
        ),
        "word_sentiment": (
            "부정적인 표현보다 긍정적인 표현을 조금 더 써 보세요.",
            "Try to phrase things a little more positively.",
        ),
    },
    "concentration": {
        "mean": (
            "화면을 바라보며 대화에 조금 더 집중해 보세요.",
            "Keep your eyes and attention on the conversation a little more.",
        ),
    },
    "gaze_stability": {
        "stability": (
            "시선을 이리저리 옮기기보다 한곳에 머물러 보세요.",
            "Let your gaze rest instead of wandering.",
        ),
        "on_screen": (
            "화면 속 상대를 바라보는 시간을 늘려 보세요.",
            "Look at the screen, at your partner, more often.",
        ),
    },
    "posture": {
        "mean": (
            "허리를 펴고 화면과 일정한 거리를 유지해 보세요.",
            "Sit up straight and keep a steady distance from the screen.",
        ),
    },
    "expression": {
        "expressiveness": (
            "표정을 조금 더 풍부하게 지어 보세요.",
            "Let your face show a little more of what you feel.",
        ),
        "positivity": (
            "굳은 표정보다 편안한 표정과 자연스러운 미소를 지어 보세요.",
            "Try a relaxed face and a natural smile.",
        ),
    },
}


def _suggestion(
    name: str, metrics: Mapping[str, Any], parts: Mapping[str, float | None]
) -> tuple[str, str]:
    """The tip for the weakest known part of the weakest component."""
    if name == "blinking":
        rate = metrics.get("blink_rate_per_min") or 0.0
        if rate < BLINK_HEALTHY[0]:
            return (
                f"눈 깜빡임이 분당 {_n(rate)}회로 적었어요. "
                "화면을 오래 응시하지 말고 눈을 자주 쉬게 해 주세요.",
                f"You blinked only {_n(rate)} times a minute; look away now and then and rest "
                "your eyes.",
            )
        return (
            f"눈 깜빡임이 분당 {_n(rate)}회로 잦았어요. "
            "피로나 긴장의 신호일 수 있으니 잠깐 쉬어 보세요.",
            f"You blinked {_n(rate)} times a minute, which can mean tiredness or tension; "
            "take a short break.",
        )
    tips = TIPS[name]
    known = [(v, k) for k, v in parts.items() if v is not None and k in tips]
    part = min(known, key=lambda vk: vk[0])[1] if known else next(iter(tips))
    return tips[part]


def summarize(
    scores: Scores,
    metrics: Mapping[str, Any],
    counts: Mapping[str, int],
    kind_examples: Sequence[str] = (),
    parts: Mapping[str, Mapping[str, float | None]] | None = None,
) -> Summary:
    """A few sentences from the numbers: overall level, strengths, one suggestion, and what
    was not measured. Deterministic rules, no language model."""
    values = {k: getattr(scores, k) for k in COMPONENTS}
    known = {k: v for k, v in values.items() if v is not None}
    if scores.total is None and known:
        turns, words = counts.get("user_turns", 0), metrics.get("user_words") or 0
        cam = _n(float(metrics.get("face_span_s") or 0.0))
        return Summary(
            ko=f"아직 점수를 매기기엔 데이터가 부족해요(대화 {turns}번, {words}단어, 카메라 "
            f"{cam}초). 대화를 {MIN_USER_TURNS}번, {MIN_USER_WORDS}단어 이상 나누거나 카메라를 "
            f"{_n(MIN_FACE_SPAN_S)}초 이상 켜 두면 점수가 나와요.",
            en=f"Too little data for a score yet ({turns} turn(s), {words} word(s), {cam} s of "
            f"camera). Talk for at least {MIN_USER_TURNS} turns and {MIN_USER_WORDS} words, or "
            f"keep the camera on for {_n(MIN_FACE_SPAN_S)} s, to get one.",
        )
    if scores.total is None or not known:
        return Summary(
            ko="아직 리포트를 만들 데이터가 부족해요. "
            "카메라나 마이크를 켜고 조금 더 대화해 보세요.",
            en="There is not enough data for a report yet: talk a little longer, with the "
            "camera or microphone on.",
        )
    total = _n(scores.total)
    lvl_ko, lvl_en = _level(total)
    ko = [f"종합 점수는 {total}점으로 {lvl_ko} ({len(known)}/8개 항목 기준)."]
    en = [f"Overall score {total}/100 ({lvl_en}), from {len(known)} of 8 areas."]
    ranked = sorted(known.items(), key=lambda kv: (-kv[1], COMPONENTS.index(kv[0])))
    strengths = [k for k, v in ranked if v >= STRENGTH_MIN][:2]
    if strengths:
        ko.append("강점은 " + "과 ".join(f"{LABELS[k][0]}({_n(known[k])}점)" for k in strengths))
        ko[-1] += "이에요."
        en.append(
            "Strengths: " + " and ".join(f"{LABELS[k][1]} ({_n(known[k])})" for k in strengths)
        )
        en[-1] += "."
    if "likability" in strengths and kind_examples:
        uniq = list(dict.fromkeys(kind_examples))[:3]
        quoted = ", ".join(f"“{x}”" for x in uniq)
        ko.append(f"{quoted} 같은 따뜻한 표현이 좋았어요.")
        en.append(f"Warm expressions such as {quoted} came across well.")
    weakest, low = ranked[-1]
    if low < SUGGEST_BELOW and weakest not in strengths:
        tip_ko, tip_en = _suggestion(weakest, metrics, (parts or {}).get(weakest, {}))
        ko.append(f"개선점 — {LABELS[weakest][0]}({_n(low)}점): {tip_ko}")
        en.append(f"To improve — {LABELS[weakest][1]} ({_n(low)}): {tip_en}")
    else:
        ko.append("모든 항목이 고르게 좋았어요. 지금처럼 유지해 보세요.")
        en.append("Every area went well; keep it up.")
    if not counts.get("face_samples"):
        ko.append(
            "카메라 데이터가 없어 얼굴 기반 항목(집중도, 시선, 눈 깜빡임, 자세, 표정)은 제외했어요."
        )
        en.append(
            "No camera data was recorded, so the face-based areas (concentration, gaze, "
            "blinking, posture, expression) were left out."
        )
    if not counts.get("voice_samples"):
        ko.append("음성 분석 데이터가 없어 목소리 특징은 반영하지 않았어요.")
        en.append("No voice analysis was recorded, so voice features were not used.")
    return Summary(ko=" ".join(ko), en=" ".join(en))


# Seed 003's expression labels, from the expression component's positivity term.
EXPRESSION_SEED = (("긍정적", 0.6), ("중립적", 0.4), ("부정적", 0.0))


def seed_feedback(report: SessionReport) -> dict[str, Any]:
    """The report as seed 003's ``feedback`` object, so its clients work unchanged: integer
    0..100 scores (0 where there was no data, as the seed's example does), the expression as
    긍정적 / 중립적 / 부정적, ``total_score``, and the Korean summary."""
    out: dict[str, Any] = {}
    for name in COMPONENTS:
        if name == "expression":
            positivity = report.parts["expression"].get("positivity")
            out[name] = next(
                label for label, floor in EXPRESSION_SEED if (positivity or 0.5) >= floor
            )
        else:
            v = getattr(report.scores, name)
            out[name] = 0 if v is None else _n(v)
    out["total_score"] = 0 if report.scores.total is None else _n(report.scores.total)
    out["summary"] = report.summary.ko
    return out


# The studio's live panel says these words too (static/i18n.js emotion.*): one vocabulary.
EMOTION_EN: dict[str, str] = {
    "happiness": "happy",
    "sadness": "sad",
    "anger": "angry",
    "surprise": "surprised",
    "fear": "afraid",
    "disgust": "disgusted",
    "neutral": "neutral",
    "contempt": "contempt",
}


def emotion_label(name: str) -> str:
    """'기쁨 happy' for charts: the words the studio's live panel uses."""
    return f"{EMOTION_KO.get(name, name)} {EMOTION_EN.get(name, name)}"
