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

This module holds the formulas that turn the readings into scores and timelines; the
report's types and thresholds are in analysis.report_model, the reading of messages and
samples (with the initiative component's turn-taking) in analysis.report_inputs, and the
summary and seed 003's feedback object in analysis.report_text.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from analysis.face.expression import EMOTIONS
from analysis.report_inputs import (
    clip01,
    face_reading,
    mean_known,
    rounded,
    turn_taking,
    utterance_point,
    weighted,
    word_tally,
)
from analysis.report_model import (
    BLINK_HEALTHY,
    COMPONENTS,
    MIN_FACE_SPAN_S,
    MIN_USER_TURNS,
    MIN_USER_WORDS,
    FaceSampleLike,
    MessageLike,
    Scores,
    SessionReport,
    Timelines,
    TimePoint,
    VoiceSampleLike,
)
from analysis.report_text import summarize

REPORT_VERSION = 2  # 2: minimum data for a total, seed 003's feedback object

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
NEGATIVE_EMOTIONS = ("sadness", "anger", "fear", "disgust", "contempt")

# Constants (docs/analysis.md explains each).
BLINK_ZERO_HIGH = 45.0  # blinks/min scoring 0 on the high side
BLINK_SETTLE_MS = 20_000.0  # face-timeline time before sample blink rates count (else None)
SMILE_FULL = 0.4  # mean happiness score giving full smile credit
EXPRESSIVE_FULL = 0.5  # mean non-neutral share giving full expressiveness
KIND_WORDS_SLOPE = 2.5  # likability word term: 0.5 + slope * net kind expressions per word
PITCH_VAR_FULL_ST = 3.0  # pitch spread (semitones) giving full liveliness
VOLUME_STD_ZERO_DB = 10.0  # spread of utterance loudness scoring 0 consistency
MAX_TIMELINE_POINTS = 240


def _pct(v: float | None) -> float | None:
    return None if v is None else round(100.0 * clip01(v), 1)


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


# --------------------------------------------------------------------------- main


def score_session(
    messages: Sequence[MessageLike],
    face: Sequence[FaceSampleLike],
    voice: Sequence[VoiceSampleLike],
) -> SessionReport:
    """Score one session from its messages (oldest first) and face/voice timelines."""
    msgs = [(str(m.role), str(m.content or "")) for m in messages]
    user_texts = [t for r, t in msgs if r == "user" and t.strip()]
    faces = sorted((face_reading(s) for s in face), key=lambda f: f.t_ms)
    utterances = sorted((utterance_point(s) for s in voice), key=lambda u: u.t_ms)

    # --- words (typed or transcribed user turns)
    w = word_tally(user_texts)
    kind_net = (w.positive + w.empathetic + w.polite - w.negative) / w.words if w.words else None
    kind = None if kind_net is None else clip01(0.5 + KIND_WORDS_SLOPE * kind_net)
    polar = w.positive + w.negative
    sentiment = (w.positive - w.negative) / polar if polar else None

    # --- face aggregates
    conc_mean = mean_known(f.concentration for f in faces)
    stab_mean = mean_known(f.stability for f in faces)
    on_vals = [f.on_screen for f in faces if f.on_screen is not None]
    on_ratio = sum(on_vals) / len(on_vals) if on_vals else None
    posture_mean = mean_known(f.posture for f in faces)
    rated = [f for f in faces if f.blink_rate is not None]
    settled = [f for f in rated if f.t_ms - faces[0].t_ms >= BLINK_SETTLE_MS]
    blink_rate = mean_known(f.blink_rate for f in settled)  # None: too short to count blinks
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
        positivity = clip01(0.5 + mean_scores["happiness"] - neg)

    # --- voice aggregates
    energy = mean_known(u.energy for u in utterances)
    warmth = mean_known(u.warmth for u in utterances)
    pitch_var = mean_known(u.pitch_var for u in utterances)
    lively = None if pitch_var is None else clip01(pitch_var / PITCH_VAR_FULL_ST)
    volumes = [u.volume_db for u in utterances if u.volume_db is not None]
    volume_std = float(np.std(volumes)) if len(volumes) >= 2 else None
    steady = None if volume_std is None else clip01(1.0 - volume_std / VOLUME_STD_ZERO_DB)
    word_tone = None if sentiment is None else (1.0 + sentiment) / 2.0

    # --- components (0..1 before scaling)
    initiative, initiative_parts, turn_metrics = turn_taking(msgs)
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
        "word_sentiment": rounded(sentiment),
        "interrupted_replies": sum(
            1 for m in messages if m.role == "assistant" and getattr(m, "interrupted", False)
        ),
        "mean_concentration": rounded(conc_mean, 2),
        "gaze_on_screen_ratio": rounded(on_ratio),
        "mean_gaze_stability": rounded(stab_mean),
        "blink_rate_per_min": rounded(blink_rate, 2),
        "mean_posture_score": rounded(posture_mean, 2),
        "mean_happiness": rounded(None if mean_scores is None else mean_scores["happiness"]),
        "mean_neutral": rounded(None if mean_scores is None else mean_scores["neutral"]),
        "dominant_emotion": None,  # the most frequent top label, filled below
        "face_span_s": rounded((faces[-1].t_ms - faces[0].t_ms) / 1000.0, 1) if faces else None,
        "mean_energy": rounded(energy),
        "mean_warmth": rounded(warmth),
        "mean_pitch_var_st": rounded(pitch_var),
        "mean_pitch_hz": rounded(mean_known(u.pitch_hz for u in utterances), 1),
        "mean_rate_wps": rounded(mean_known(u.rate_wps for u in utterances), 2),
        "volume_std_db": rounded(volume_std, 2),
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
        parts={c: {k: rounded(v) for k, v in p.items()} for c, p in parts.items()},
        metrics=metrics,
        counts=counts,
        enough_data=enough,
        summary=summary,
        timelines=timelines,
    )
