"""Reading a session's inputs: the conversation into words, questions and turn-taking (the
initiative component), and face and voice samples into typed readings.

A field that is missing, None, NaN or of the wrong type reads as None on its own; the rest
of the sample still counts. Formulas and constants: docs/analysis.md ("Session report scoring").
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.face.expression import EMOTIONS
from analysis.report_model import SampleLike, UtterancePoint
from analysis.wordchoice import analyze_words

QUESTION_SHARE_FULL = 0.3  # share of user turns that are questions giving full credit
SHORT_ANSWER_WORDS = 8  # a reply to a question with fewer words and no question: plain answer
USER_WORDS_FULL = 8.0  # user words per turn giving full credit
LENGTH_RATIO_FULL = 0.5  # user/assistant words per turn giving full credit

_SENTENCE_END = re.compile(r"[.!?。！？…\n]+")
_KO_QUESTION_ENDINGS = ("까", "나요", "니", "냐", "어때", "래", "가요", "는지")
_EN_QUESTION_START = re.compile(
    r"^(what|why|how|when|where|who|whom|whose|which|do|does|did|can|could|would|will|"
    r"shall|should|is|are|was|were|have|has|may|might)\b",
    re.IGNORECASE,
)


def number(v: Any) -> float | None:
    """A finite number, else None (bools, strings, NaN and None are not numbers here)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def clip01(v: float) -> float:
    """Into 0..1: every term of a component is a 0..1 share."""
    return min(1.0, max(0.0, v))


def mean_known(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not None; None when there are none (no data, no score)."""
    xs = [v for v in values if v is not None]
    return float(np.mean(xs)) if xs else None


def weighted(parts: Sequence[tuple[float, float | None]]) -> float | None:
    """Weighted mean of the known terms; None when every term is unknown."""
    known = [(w, v) for w, v in parts if v is not None]
    if not known:
        return None
    return sum(w * v for w, v in known) / sum(w for w, _ in known)


def rounded(v: float | None, nd: int = 3) -> float | None:
    """Rounded for the report, None kept (unmeasured stays unmeasured)."""
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


@dataclass(frozen=True, slots=True)
class FaceReading:
    """One face sample's fields, each None when missing or unusable."""

    t_ms: float
    emotion: str | None
    scores: dict[str, float] | None
    blink_rate: float | None
    on_screen: bool | None
    stability: float | None
    posture: float | None
    concentration: float | None


def face_reading(s: SampleLike) -> FaceReading:
    """A stored face sample read field by field; soft scores win, a bare label is one-hot."""
    d = s.data or {}
    emotion = d.get("emotion") if d.get("emotion") in EMOTIONS else None
    raw = d.get("emotion_scores")
    scores: dict[str, float] | None = None
    if isinstance(raw, Mapping):
        vals = {k: number(raw.get(k)) for k in EMOTIONS}
        if all(v is not None for v in vals.values()):
            scores = {k: max(0.0, v) for k, v in vals.items() if v is not None}
    if scores is None and emotion is not None:  # label only: one-hot
        scores = {k: float(k == emotion) for k in EMOTIONS}
    if emotion is None and scores is not None and sum(scores.values()) > 0:
        emotion = max(scores, key=scores.__getitem__)
    on = d.get("gaze_on_screen")
    stab = number(d.get("gaze_stability"))
    post = number(d.get("posture_score"))
    conc = number(d.get("concentration"))
    return FaceReading(
        t_ms=number(s.t_ms) or 0.0,
        emotion=emotion,
        scores=scores,
        blink_rate=number(d.get("blink_rate_per_min")),
        on_screen=on if isinstance(on, bool) else None,
        stability=None if stab is None else clip01(stab),
        posture=None if post is None else min(100.0, max(0.0, post)),
        concentration=None if conc is None else min(100.0, max(0.0, conc)),
    )


VOICE_KEYS = ("pitch_hz", "pitch_var", "rate_wps", "volume_db", "pause_ratio", "energy", "warmth")


def utterance_point(s: SampleLike) -> UtterancePoint:
    """A stored voice sample (one utterance) as a chart point, unusable fields None."""
    d = s.data or {}
    v = {k: number(d.get(k)) for k in VOICE_KEYS}
    return UtterancePoint(
        t_ms=round(number(s.t_ms) or 0.0), **{k: rounded(x) for k, x in v.items()}
    )


@dataclass(slots=True)
class WordTally:
    """Word-choice counts summed over the user's messages, with quotable kind words."""

    words: int = 0
    positive: int = 0
    negative: int = 0
    empathetic: int = 0
    polite: int = 0
    kind_examples: list[str] = field(default_factory=list)


def word_tally(user_texts: list[str]) -> WordTally:
    """analysis.wordchoice on each user message, summed."""
    w = WordTally()
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


def turn_taking(msgs: list[tuple[str, str]]) -> tuple[float | None, dict[str, float | None], dict]:
    """Turn-taking: plain answers, questions and turn length.

    Returns the initiative component (0..1, None without user turns), its terms and the
    turn metrics the report shows.
    """
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
        "assistant_words_per_turn": rounded(awpt, 2),
        "user_assistant_length_ratio": rounded(ratio),
    }
    a = 1.0 - plain_answers / user_turns
    q = min(1.0, questions / user_turns / QUESTION_SHARE_FULL)
    per_turn = min(1.0, uwpt / USER_WORDS_FULL)
    length = per_turn
    if ratio is not None:
        length = 0.5 * per_turn + 0.5 * min(1.0, ratio / LENGTH_RATIO_FULL)
    parts = {"not_just_answers": a, "questions": q, "length": length}
    return weighted([(0.4, a), (0.3, q), (0.3, length)]), parts, metrics
