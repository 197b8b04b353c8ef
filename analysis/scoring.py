"""After-session feedback report: eight 0..100 scores, a weighted total, a rule-based
summary in Korean and English, and chart timelines.

Pure computation: messages (anything with ``role`` and ``content``) and timeline samples
(anything with ``t_ms`` and a ``data`` mapping, e.g. the store's ``Sample``) in, a
``SessionReport`` dataclass out. No server imports, no I/O beyond the word-choice lexicons
that ``analysis.wordchoice`` loads from this package.

Why components can be None: a score is only given when its modality produced data. A
session without a camera has no concentration, gaze, blinking, posture or expression
score, and those are left out of the total instead of being filled with a neutral value.
Every formula and constant is documented in docs/analysis.md ("Session report scoring").
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from analysis.face.expression import EMOTION_KO, EMOTIONS
from analysis.wordchoice import analyze_words

REPORT_VERSION = 2  # 2: minimum data for a total, seed 003's feedback object

COMPONENTS: tuple[str, ...] = (
    "likability",
    "initiative",
    "tone",
    "concentration",
    "gaze_stability",
    "blinking",
    "posture",
    "expression",
)
# Weights of the total (sum 1); a component without data drops out and the rest renormalise.
WEIGHTS: dict[str, float] = {
    "likability": 0.15,
    "initiative": 0.15,
    "tone": 0.15,
    "concentration": 0.15,
    "gaze_stability": 0.10,
    "blinking": 0.05,
    "posture": 0.10,
    "expression": 0.15,
}
LABELS: dict[str, tuple[str, str]] = {  # (ko, en)
    "likability": ("호감도", "likability"),
    "initiative": ("주도성", "initiative"),
    "tone": ("어조", "tone"),
    "concentration": ("집중도", "concentration"),
    "gaze_stability": ("시선 안정성", "gaze stability"),
    "blinking": ("눈 깜빡임", "blinking"),
    "posture": ("자세", "posture"),
    "expression": ("표정", "expression"),
    "total": ("종합", "total"),
}
FACE_COMPONENTS = ("concentration", "gaze_stability", "blinking", "posture", "expression")
NEGATIVE_EMOTIONS = ("sadness", "anger", "fear", "disgust", "contempt")

# Constants (docs/analysis.md explains each).
BLINK_HEALTHY = (10.0, 20.0)  # blinks/min scoring 100
BLINK_ZERO_HIGH = 45.0  # blinks/min scoring 0 on the high side
BLINK_SETTLE_MS = 20_000.0  # face-timeline time before sample blink rates count (else None)
SMILE_FULL = 0.4  # mean happiness score giving full smile credit
EXPRESSIVE_FULL = 0.5  # mean non-neutral share giving full expressiveness
KIND_WORDS_SLOPE = 2.5  # likability word term: 0.5 + slope * net kind expressions per word
QUESTION_SHARE_FULL = 0.3  # share of user turns that are questions giving full credit
SHORT_ANSWER_WORDS = 8  # a reply to a question with fewer words and no question: plain answer
USER_WORDS_FULL = 8.0  # user words per turn giving full credit
LENGTH_RATIO_FULL = 0.5  # user/assistant words per turn giving full credit
PITCH_VAR_FULL_ST = 3.0  # pitch spread (semitones) giving full liveliness
VOLUME_STD_ZERO_DB = 10.0  # spread of utterance loudness scoring 0 consistency
STRENGTH_MIN = 70.0  # components at least this good are named as strengths
SUGGEST_BELOW = 80.0  # the weakest component gets a suggestion when under this
MAX_TIMELINE_POINTS = 240
# The least a session needs before it gets a total score: enough conversation, or enough
# camera time. Below both, the report says so instead of giving a confident number.
MIN_USER_TURNS = 2
MIN_USER_WORDS = 10
MIN_FACE_SPAN_S = 20.0

_SENTENCE_END = re.compile(r"[.!?。！？…\n]+")
_KO_QUESTION_ENDINGS = ("까", "나요", "니", "냐", "어때", "래", "가요", "는지")
_EN_QUESTION_START = re.compile(
    r"^(what|why|how|when|where|who|whom|whose|which|do|does|did|can|could|would|will|"
    r"shall|should|is|are|was|were|have|has|may|might)\b",
    re.IGNORECASE,
)


# --------------------------------------------------------------------------- inputs


class MessageLike(Protocol):
    """A stored message: the store's MessageRecord fits, so does ``Message``."""

    @property
    def role(self) -> str: ...

    @property
    def content(self) -> str: ...


class SampleLike(Protocol):
    """A timeline point: the store's Sample fits, so does ``TimelineSample``."""

    @property
    def t_ms(self) -> int | float: ...

    @property
    def data(self) -> Mapping[str, Any]: ...


FaceSampleLike = SampleLike
VoiceSampleLike = SampleLike


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str
    interrupted: bool = False


@dataclass(frozen=True, slots=True)
class TimelineSample:
    t_ms: float
    data: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class Scores:
    """0..100 each (1 decimal); None when the session gave no data for it."""

    likability: float | None = None
    initiative: float | None = None
    tone: float | None = None
    concentration: float | None = None
    gaze_stability: float | None = None
    blinking: float | None = None
    posture: float | None = None
    expression: float | None = None
    total: float | None = None


@dataclass(frozen=True, slots=True)
class Summary:
    ko: str
    en: str


@dataclass(frozen=True, slots=True)
class TimePoint:
    t_ms: int
    value: float


@dataclass(frozen=True, slots=True)
class UtterancePoint:
    t_ms: int
    pitch_hz: float | None
    pitch_var: float | None
    rate_wps: float | None
    volume_db: float | None
    pause_ratio: float | None
    energy: float | None
    warmth: float | None


@dataclass(frozen=True, slots=True)
class Timelines:
    concentration: list[TimePoint]
    emotion_distribution: dict[str, float]  # share of face samples per top emotion
    emotion_mean_scores: dict[str, float]  # mean soft score per emotion
    voice: list[UtterancePoint]


@dataclass(frozen=True, slots=True)
class SessionReport:
    version: int
    scores: Scores
    weights: dict[str, float]
    parts: dict[str, dict[str, float | None]]  # each component's 0..1 terms
    metrics: dict[str, float | int | str | None]
    counts: dict[str, int]
    enough_data: bool
    summary: Summary
    timelines: Timelines

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- helpers


def _num(v: Any) -> float | None:
    """A finite number, else None (bools, strings, NaN and None are not numbers here)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _clip01(v: float) -> float:
    return min(1.0, max(0.0, v))


def _mean(values: Iterable[float | None]) -> float | None:
    xs = [v for v in values if v is not None]
    return float(np.mean(xs)) if xs else None


def weighted(parts: Sequence[tuple[float, float | None]]) -> float | None:
    """Weighted mean of the known terms; None when every term is unknown."""
    known = [(w, v) for w, v in parts if v is not None]
    if not known:
        return None
    return sum(w * v for w, v in known) / sum(w for w, _ in known)


def _pct(v: float | None) -> float | None:
    return None if v is None else round(100.0 * _clip01(v), 1)


def _r(v: float | None, nd: int = 3) -> float | None:
    return None if v is None else round(v, nd)


def count_words(text: str) -> int:
    """Whitespace tokens containing a letter or digit (eojeol in Korean), as wordchoice."""
    return sum(1 for t in text.split() if any(c.isalnum() for c in t))


def is_question(text: str) -> bool:
    """'?' anywhere; else a sentence ending in a Korean interrogative ending, or an English
    sentence starting with a wh-word or an auxiliary verb."""
    if "?" in text or "？" in text:
        return True
    for sentence in _SENTENCE_END.split(text):
        s = sentence.strip().rstrip("~")
        if not s:
            continue
        if s.endswith(_KO_QUESTION_ENDINGS) and re.search(r"[\uac00-\ud7a3]$", s):
            return True
        if _EN_QUESTION_START.match(s):
            return True
    return False


def blink_score(rate_per_min: float) -> float:
    """0..100: 100 inside 10-20 blinks/min, linear to 0 at 0 and at 45 blinks/min."""
    lo, hi = BLINK_HEALTHY
    r = max(rate_per_min, 0.0)
    if r < lo:
        return 100.0 * r / lo
    if r <= hi:
        return 100.0
    return 100.0 * max(0.0, 1.0 - (r - hi) / (BLINK_ZERO_HIGH - hi))


def downsample(points: Sequence[tuple[float, float]], max_points: int) -> list[TimePoint]:
    """At most ``max_points`` points: equal-count buckets, each its mean time and value."""
    if not points:
        return []
    if len(points) <= max_points:
        return [TimePoint(round(t), round(v, 2)) for t, v in points]
    arr = np.asarray(points, dtype=np.float64)
    out = []
    for chunk in np.array_split(arr, max_points):
        t, v = chunk.mean(axis=0)
        out.append(TimePoint(round(float(t)), round(float(v), 2)))
    return out


# --------------------------------------------------------------------------- components


@dataclass(frozen=True, slots=True)
class _Face:
    t_ms: float
    emotion: str | None
    scores: dict[str, float] | None
    blink_rate: float | None
    on_screen: bool | None
    stability: float | None
    posture: float | None
    concentration: float | None


def _parse_face(s: SampleLike) -> _Face:
    d = s.data or {}
    emotion = d.get("emotion") if d.get("emotion") in EMOTIONS else None
    raw = d.get("emotion_scores")
    scores: dict[str, float] | None = None
    if isinstance(raw, Mapping):
        vals = {k: _num(raw.get(k)) for k in EMOTIONS}
        if all(v is not None for v in vals.values()):
            scores = {k: max(0.0, v) for k, v in vals.items() if v is not None}
    if scores is None and emotion is not None:  # label only: one-hot
        scores = {k: float(k == emotion) for k in EMOTIONS}
    if emotion is None and scores is not None and sum(scores.values()) > 0:
        emotion = max(scores, key=scores.__getitem__)
    on = d.get("gaze_on_screen")
    stab = _num(d.get("gaze_stability"))
    post = _num(d.get("posture_score"))
    conc = _num(d.get("concentration"))
    return _Face(
        t_ms=_num(s.t_ms) or 0.0,
        emotion=emotion,
        scores=scores,
        blink_rate=_num(d.get("blink_rate_per_min")),
        on_screen=on if isinstance(on, bool) else None,
        stability=None if stab is None else _clip01(stab),
        posture=None if post is None else min(100.0, max(0.0, post)),
        concentration=None if conc is None else min(100.0, max(0.0, conc)),
    )


_VOICE_KEYS = ("pitch_hz", "pitch_var", "rate_wps", "volume_db", "pause_ratio", "energy", "warmth")


def _parse_voice(s: SampleLike) -> UtterancePoint:
    d = s.data or {}
    v = {k: _num(d.get(k)) for k in _VOICE_KEYS}
    return UtterancePoint(t_ms=round(_num(s.t_ms) or 0.0), **{k: _r(x) for k, x in v.items()})


@dataclass(slots=True)
class _Words:
    words: int = 0
    positive: int = 0
    negative: int = 0
    empathetic: int = 0
    polite: int = 0
    kind_examples: list[str] = field(default_factory=list)


def _word_choice(user_texts: list[str]) -> _Words:
    w = _Words()
    for text in user_texts:
        wc = analyze_words(text)
        w.words += wc.words
        w.positive += wc.positive
        w.negative += wc.negative
        w.empathetic += wc.empathetic
        w.polite += wc.polite
        for cat in ("empathetic", "positive", "polite"):  # quotable words, not "-요 (…)" endings
            w.kind_examples.extend(m for m in wc.matches.get(cat, []) if not m.startswith("-"))
    return w


def _initiative(msgs: list[tuple[str, str]]) -> tuple[float | None, dict[str, float | None], dict]:
    """Turn-taking: plain answers, questions and turn length."""
    user_turns = 0
    questions = 0
    plain_answers = 0
    user_words = 0
    asst_turns = 0
    asst_words = 0
    prev_asst_question = False
    for role, text in msgs:
        if role == "assistant":
            asst_turns += 1
            asst_words += count_words(text)
            prev_asst_question = is_question(text)
            continue
        if role != "user" or not text.strip():
            continue
        user_turns += 1
        n = count_words(text)
        user_words += n
        q = is_question(text)
        questions += q
        if prev_asst_question and not q and n < SHORT_ANSWER_WORDS:
            plain_answers += 1
        prev_asst_question = False
    metrics: dict[str, float | int | None] = {
        "user_turns": user_turns,
        "assistant_turns": asst_turns,
        "user_questions": questions,
        "plain_answers": plain_answers,
        "user_words_per_turn": None,
        "assistant_words_per_turn": None,
        "user_assistant_length_ratio": None,
    }
    if not user_turns:
        return None, {"not_just_answers": None, "questions": None, "length": None}, metrics
    uwpt = user_words / user_turns
    awpt = asst_words / asst_turns if asst_turns else None
    ratio = uwpt / awpt if awpt else None
    metrics |= {
        "user_words_per_turn": round(uwpt, 2),
        "assistant_words_per_turn": _r(awpt, 2),
        "user_assistant_length_ratio": _r(ratio),
    }
    a = 1.0 - plain_answers / user_turns
    q = min(1.0, questions / user_turns / QUESTION_SHARE_FULL)
    per_turn = min(1.0, uwpt / USER_WORDS_FULL)
    length = per_turn
    if ratio is not None:
        length = 0.5 * per_turn + 0.5 * min(1.0, ratio / LENGTH_RATIO_FULL)
    parts = {"not_just_answers": a, "questions": q, "length": length}
    return weighted([(0.4, a), (0.3, q), (0.3, length)]), parts, metrics


# --------------------------------------------------------------------------- main


def score_session(
    messages: Sequence[MessageLike],
    face: Sequence[FaceSampleLike],
    voice: Sequence[VoiceSampleLike],
) -> SessionReport:
    """Score one session from its messages (oldest first) and face/voice timelines."""
    msgs = [(str(m.role), str(m.content or "")) for m in messages]
    user_texts = [t for r, t in msgs if r == "user" and t.strip()]
    faces = sorted((_parse_face(s) for s in face), key=lambda f: f.t_ms)
    utterances = sorted((_parse_voice(s) for s in voice), key=lambda u: u.t_ms)

    # --- words (typed or transcribed user turns)
    w = _word_choice(user_texts)
    kind_net = (w.positive + w.empathetic + w.polite - w.negative) / w.words if w.words else None
    kind = None if kind_net is None else _clip01(0.5 + KIND_WORDS_SLOPE * kind_net)
    polar = w.positive + w.negative
    sentiment = (w.positive - w.negative) / polar if polar else None

    # --- face aggregates
    conc_mean = _mean(f.concentration for f in faces)
    stab_mean = _mean(f.stability for f in faces)
    on_vals = [f.on_screen for f in faces if f.on_screen is not None]
    on_ratio = sum(on_vals) / len(on_vals) if on_vals else None
    posture_mean = _mean(f.posture for f in faces)
    rated = [f for f in faces if f.blink_rate is not None]
    settled = [f for f in rated if f.t_ms - faces[0].t_ms >= BLINK_SETTLE_MS]
    blink_rate = _mean(f.blink_rate for f in settled)  # None: too short to count blinks
    scored = [f.scores for f in faces if f.scores is not None]
    mean_scores = {k: float(np.mean([s[k] for s in scored])) for k in EMOTIONS} if scored else None
    labelled = [f.emotion for f in faces if f.emotion is not None]
    distribution = (
        {k: round(labelled.count(k) / len(labelled), 4) for k in EMOTIONS} if labelled else {}
    )

    smile = None if mean_scores is None else min(1.0, mean_scores["happiness"] / SMILE_FULL)
    expressive = positivity = None
    if mean_scores is not None:
        expressive = min(1.0, (1.0 - mean_scores["neutral"]) / EXPRESSIVE_FULL)
        neg = sum(mean_scores[k] for k in NEGATIVE_EMOTIONS)
        positivity = _clip01(0.5 + mean_scores["happiness"] - neg)

    # --- voice aggregates
    energy = _mean(u.energy for u in utterances)
    warmth = _mean(u.warmth for u in utterances)
    pitch_var = _mean(u.pitch_var for u in utterances)
    lively = None if pitch_var is None else _clip01(pitch_var / PITCH_VAR_FULL_ST)
    volumes = [u.volume_db for u in utterances if u.volume_db is not None]
    volume_std = float(np.std(volumes)) if len(volumes) >= 2 else None
    steady = None if volume_std is None else _clip01(1.0 - volume_std / VOLUME_STD_ZERO_DB)
    word_tone = None if sentiment is None else (1.0 + sentiment) / 2.0

    # --- components (0..1 before scaling)
    initiative, initiative_parts, turn_metrics = _initiative(msgs)
    parts: dict[str, dict[str, float | None]] = {
        "likability": {"voice_warmth": warmth, "kind_words": kind, "smile": smile},
        "initiative": initiative_parts,
        "tone": {
            "energy": energy,
            "pitch_liveliness": lively,
            "volume_steadiness": steady,
            "word_sentiment": word_tone,
        },
        "concentration": {"mean": None if conc_mean is None else conc_mean / 100.0},
        "gaze_stability": {"stability": stab_mean, "on_screen": on_ratio},
        "blinking": {"rate_score": None if blink_rate is None else blink_score(blink_rate) / 100},
        "posture": {"mean": None if posture_mean is None else posture_mean / 100.0},
        "expression": {"expressiveness": expressive, "positivity": positivity},
    }
    raw: dict[str, float | None] = {
        "likability": weighted([(0.35, warmth), (0.35, kind), (0.30, smile)]),
        "initiative": initiative,
        "tone": weighted([(0.35, energy), (0.25, lively), (0.15, steady), (0.25, word_tone)]),
        "concentration": parts["concentration"]["mean"],
        "gaze_stability": weighted([(0.5, stab_mean), (0.5, on_ratio)]),
        "blinking": parts["blinking"]["rate_score"],
        "posture": parts["posture"]["mean"],
        "expression": weighted([(0.4, expressive), (0.6, positivity)]),
    }
    face_span_s = (faces[-1].t_ms - faces[0].t_ms) / 1000.0 if faces else 0.0
    talked = len(user_texts) >= MIN_USER_TURNS and w.words >= MIN_USER_WORDS
    enough = any(v is not None for v in raw.values()) and (talked or face_span_s >= MIN_FACE_SPAN_S)
    total = weighted([(WEIGHTS[k], raw[k]) for k in COMPONENTS]) if enough else None
    scores = Scores(**{k: _pct(v) for k, v in raw.items()}, total=_pct(total))

    metrics: dict[str, float | int | str | None] = {
        **turn_metrics,
        "user_words": w.words,
        "positive_words": w.positive,
        "negative_words": w.negative,
        "empathetic_words": w.empathetic,
        "polite_words": w.polite,
        "word_sentiment": _r(sentiment),
        "interrupted_replies": sum(
            1 for m in messages if m.role == "assistant" and getattr(m, "interrupted", False)
        ),
        "mean_concentration": _r(conc_mean, 2),
        "gaze_on_screen_ratio": _r(on_ratio),
        "mean_gaze_stability": _r(stab_mean),
        "blink_rate_per_min": _r(blink_rate, 2),
        "mean_posture_score": _r(posture_mean, 2),
        "mean_happiness": _r(None if mean_scores is None else mean_scores["happiness"]),
        "mean_neutral": _r(None if mean_scores is None else mean_scores["neutral"]),
        "dominant_emotion": None,  # the most frequent top label, filled below
        "face_span_s": _r((faces[-1].t_ms - faces[0].t_ms) / 1000.0, 1) if faces else None,
        "mean_energy": _r(energy),
        "mean_warmth": _r(warmth),
        "mean_pitch_var_st": _r(pitch_var),
        "mean_pitch_hz": _r(_mean(u.pitch_hz for u in utterances), 1),
        "mean_rate_wps": _r(_mean(u.rate_wps for u in utterances), 2),
        "volume_std_db": _r(volume_std, 2),
    }
    if distribution:
        metrics["dominant_emotion"] = max(distribution, key=distribution.__getitem__)
    counts = {
        "messages": len(msgs),
        "user_turns": len(user_texts),
        "face_samples": len(faces),
        "voice_samples": len(utterances),
    }
    conc_points = [(f.t_ms, f.concentration) for f in faces if f.concentration is not None]
    timelines = Timelines(
        concentration=downsample(conc_points, MAX_TIMELINE_POINTS),
        emotion_distribution=distribution,
        emotion_mean_scores=(
            {k: round(v, 4) for k, v in mean_scores.items()} if mean_scores is not None else {}
        ),
        voice=utterances,
    )
    summary = summarize(scores, metrics, counts, w.kind_examples, parts)
    return SessionReport(
        version=REPORT_VERSION,
        scores=scores,
        weights=dict(WEIGHTS),
        parts={c: {k: _r(v) for k, v in p.items()} for c, p in parts.items()},
        metrics=metrics,
        counts=counts,
        enough_data=enough,
        summary=summary,
        timelines=timelines,
    )


# --------------------------------------------------------------------------- summary


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
