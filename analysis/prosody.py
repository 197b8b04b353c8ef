"""Voice prosody of one utterance: pitch, loudness, speaking rate, pauses and two tone scores.

Pure computation (numpy + Praat through parselmouth). Input is the utterance audio and its
transcript; output is a `ProsodyResult` whose fields are None when they cannot be measured
(silence, clips too short for pitch tracking, no words), so callers never need try/except.
The formulas are documented in docs/analysis.md ("Voice prosody").
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
from dataclasses import dataclass

import numpy as np

FRAME_S = 0.025  # energy analysis window
HOP_S = 0.010  # energy and pitch frame step
SILENCE_DBFS = -55.0  # frames quieter than this are never speech
MIN_PAUSE_S = 0.15  # shorter gaps are articulation (stop closures), not pauses
MIN_SPEECH_S = 0.03  # shorter bursts are clicks, not speech
PITCH_FLOOR_HZ = 60.0  # outer bounds of the first, wide pitch pass
PITCH_CEILING_HZ = 700.0
CJK_CHARS_PER_WORD = 1.6  # zh/ja have no spaces: words are estimated from characters
_DB_FLOOR = -120.0

_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_KANA = re.compile(r"[\u3041-\u3096\u30a1-\u30fa\u30fc]")
_SMALL_KANA = set("ゃゅょぁぃぅぇぉャュョァィゥェォ")
_HAN = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]")
_LATIN_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")
_DIGITS = re.compile(r"\d")
_VOWEL_GROUPS = re.compile(r"[aeiouy]+")


@dataclass(frozen=True, slots=True)
class ProsodyResult:
    """Prosody of one utterance; None means "not measurable" (silence, too short, no words)."""

    duration_s: float
    speech_s: float | None  # speech time: first to last speech frame minus pauses
    pitch_hz: float | None  # mean F0 over voiced frames
    pitch_var: float | None  # F0 standard deviation in semitones (scale-free across voices)
    pitch_std_hz: float | None  # the same spread in Hz
    words: int
    syllables: int
    rate_wps: float | None  # words per second of speech time
    syllables_per_s: float | None
    volume_db: float | None  # RMS level in dBFS over voiced frames (energy-weighted)
    volume_consistency: float | None  # 0..1, 1 = steady loudness
    pause_ratio: float | None  # share of pause time between first and last speech
    voiced_ratio: float | None  # share of speech frames with a pitch
    energy: float | None  # 0..1 tone indicator: loud, lively, fast
    warmth: float | None  # 0..1 tone indicator: melodic, unhurried, gentle, steady
    language: str | None


def analyze_prosody(
    pcm: np.ndarray,
    sample_rate: int,
    transcript: str,
    language: str | None = None,
    word_timestamps: list[tuple[float, float]] | None = None,
    *,
    pitch_floor: float = PITCH_FLOOR_HZ,
    pitch_ceiling: float = PITCH_CEILING_HZ,
) -> ProsodyResult:
    """Measure one utterance (float mono in [-1, 1]) and its transcript.

    `word_timestamps` (seconds, e.g. from Whisper) make the speech time for the rates
    exact; without them speech time comes from the energy-based speech frames.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    x = np.nan_to_num(np.asarray(pcm, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if x.ndim > 1:
        x = x.mean(axis=1) if x.shape[-1] <= 8 else x.mean(axis=0)
    if np.issubdtype(np.asarray(pcm).dtype, np.integer):
        x = x / 32768.0
    duration = x.size / sample_rate
    lang = language or detect_script_language(transcript)
    words, syllables = count_units(transcript, lang)
    if not words and word_timestamps:
        words = len(word_timestamps)

    frame_db = _frame_db(x, sample_rate)
    speech = _speech_mask(frame_db)
    span = _speech_span(speech)
    if span is None:
        return _empty(duration, words, syllables, lang)

    first, last = span
    inner = speech[first : last + 1]
    pause_frames = sum(n for v, n in _runs(inner) if not v and n * HOP_S >= MIN_PAUSE_S)
    span_frames = last - first + 1
    pause_ratio = pause_frames / span_frames
    speech_s = (span_frames - pause_frames) * HOP_S

    rate_time = _timestamp_speech_time(word_timestamps) if word_timestamps else None
    rate_time = rate_time or speech_s
    rate_wps = words / rate_time if words and rate_time >= 0.1 else None
    sps = syllables / rate_time if syllables and rate_time >= 0.1 else None

    f0_times, f0 = _two_pass_pitch(x, sample_rate, speech, pitch_floor, pitch_ceiling)
    voiced = _voiced_frames(f0_times, f0, frame_db.size) & speech
    pitch_hz = pitch_var = pitch_std = None
    voiced_f0 = _f0_in_speech(f0_times, f0, speech)
    if voiced_f0.size >= 3:
        pitch_hz = float(voiced_f0.mean())
        pitch_std = float(voiced_f0.std())
        pitch_var = float((12.0 * np.log2(voiced_f0 / pitch_hz)).std())

    level_frames = frame_db[voiced] if voiced.sum() >= 3 else frame_db[speech]
    volume_db = float(10.0 * np.log10(np.mean(10.0 ** (level_frames / 10.0))))
    consistency = float(np.clip(1.0 - level_frames.std() / 15.0, 0.0, 1.0))
    n_speech = int(speech.sum())
    voiced_ratio = float(voiced.sum() / n_speech) if n_speech else None

    return ProsodyResult(
        duration_s=duration,
        speech_s=speech_s,
        pitch_hz=pitch_hz,
        pitch_var=pitch_var,
        pitch_std_hz=pitch_std,
        words=words,
        syllables=syllables,
        rate_wps=rate_wps,
        syllables_per_s=sps,
        volume_db=volume_db,
        volume_consistency=consistency,
        pause_ratio=float(pause_ratio),
        voiced_ratio=voiced_ratio,
        energy=energy_score(volume_db, pitch_var, sps),
        warmth=warmth_score(volume_db, pitch_var, sps, consistency),
        language=lang,
    )


# --------------------------------------------------------------------------- tone scores


def energy_score(
    volume_db: float | None, pitch_var_st: float | None, syllables_per_s: float | None
) -> float | None:
    """0..1: how energetic the voice sounds (loud, lively intonation, brisk pace)."""
    parts = [
        (0.45, None if volume_db is None else _clip01((volume_db + 45.0) / 30.0)),
        (0.35, None if pitch_var_st is None else _clip01(pitch_var_st / 4.0)),
        (0.20, None if syllables_per_s is None else _clip01((syllables_per_s - 2.5) / 5.0)),
    ]
    return _weighted(parts)


def warmth_score(
    volume_db: float | None,
    pitch_var_st: float | None,
    syllables_per_s: float | None,
    consistency: float | None,
) -> float | None:
    """0..1: how warm the voice sounds (melodic not flat nor agitated, unhurried, gentle).

    A heuristic for feedback wording, not a validated perceptual model.
    """
    melody = None if pitch_var_st is None else math.exp(-(((pitch_var_st - 2.5) / 1.5) ** 2))
    parts = [
        (0.4, melody),
        (0.2, None if syllables_per_s is None else 1.0 - _clip01((syllables_per_s - 5.0) / 3.0)),
        (0.2, None if volume_db is None else 1.0 - _clip01((volume_db + 20.0) / 10.0)),
        (0.2, consistency),
    ]
    return _weighted(parts)


def _weighted(parts: list[tuple[float, float | None]]) -> float | None:
    known = [(w, v) for w, v in parts if v is not None]
    if not known:
        return None
    return float(sum(w * v for w, v in known) / sum(w for w, _ in known))


def _clip01(v: float) -> float:
    return min(1.0, max(0.0, v))


# --------------------------------------------------------------------------- text units


def detect_script_language(text: str) -> str | None:
    """Guess the language family from the script: Hangul -> ko, kana -> ja, Han -> zh."""
    if _HANGUL.search(text):
        return "ko"
    if _KANA.search(text):
        return "ja"
    if _HAN.search(text):
        return "zh"
    if re.search(r"[A-Za-z]", text):
        return "en"
    return None


def count_units(text: str, language: str | None = None) -> tuple[int, int]:
    """Return (words, syllables) of a transcript.

    Korean words are eojeol (space-separated units) and each Hangul block is one syllable.
    Chinese and Japanese have no spaces: each Han character or kana is one syllable and
    words are estimated as characters / 1.6. Latin words use a vowel-group heuristic.
    """
    text = unicodedata.normalize("NFC", text or "")
    words = 0
    syllables = 0
    cjk_chars = 0
    for token in text.split():
        hangul = len(_HANGUL.findall(token))
        han = len(_HAN.findall(token))
        kana = sum(1 for c in _KANA.findall(token) if c not in _SMALL_KANA)
        latin = _LATIN_WORD.findall(token.lower())
        latin_syl = sum(_english_syllables(w) for w in latin)
        digits = len(_DIGITS.findall(token))
        syllables += hangul + han + kana + latin_syl + digits
        cjk_chars += han + kana
        if hangul or latin or digits:
            words += 1
        elif not (han or kana) and any(c.isalpha() for c in token):
            words += 1
    if cjk_chars:
        words += max(1, round(cjk_chars / CJK_CHARS_PER_WORD))
    return words, syllables


def _english_syllables(word: str) -> int:
    n = len(_VOWEL_GROUPS.findall(word))
    if word.endswith("e") and not word.endswith(("le", "ee", "ye")) and n > 1:
        n -= 1
    return max(1, n)


# --------------------------------------------------------------------------- signal helpers


def _frame_db(x: np.ndarray, sr: int) -> np.ndarray:
    frame = max(1, round(FRAME_S * sr))
    hop = max(1, round(HOP_S * sr))
    if x.size < frame:
        return np.zeros(0)
    windows = np.lib.stride_tricks.sliding_window_view(x, frame)[::hop]
    rms = np.sqrt(np.mean(windows * windows, axis=1))
    return np.maximum(20.0 * np.log10(np.maximum(rms, 1e-12)), _DB_FLOOR)


def _speech_mask(db: np.ndarray) -> np.ndarray:
    """Energy speech detector with an adaptive threshold between noise floor and peak level."""
    if db.size == 0:
        return np.zeros(0, dtype=bool)
    peak = float(np.percentile(db, 95))
    if peak < SILENCE_DBFS:
        return np.zeros(db.size, dtype=bool)
    floor = float(np.percentile(db, 10))
    threshold = max(SILENCE_DBFS, peak - 30.0, floor + 0.3 * (peak - floor))
    if peak - floor < 12.0:  # no quiet stretch to learn a floor from: all loud frames count
        threshold = max(SILENCE_DBFS, peak - 12.0)
    mask = db > threshold
    min_len = max(1, round(MIN_SPEECH_S / HOP_S))
    pos = 0
    for value, n in _runs(mask):
        if value and n < min_len:
            mask[pos : pos + n] = False
        pos += n
    return mask


def _runs(mask: np.ndarray) -> list[tuple[bool, int]]:
    if mask.size == 0:
        return []
    edges = np.flatnonzero(np.diff(mask.astype(np.int8))) + 1
    bounds = np.concatenate(([0], edges, [mask.size]))
    return [(bool(mask[a]), int(b - a)) for a, b in itertools.pairwise(bounds)]


def _speech_span(mask: np.ndarray) -> tuple[int, int] | None:
    idx = np.flatnonzero(mask)
    return None if idx.size == 0 else (int(idx[0]), int(idx[-1]))


def _timestamp_speech_time(stamps: list[tuple[float, float]]) -> float | None:
    """Speech time from word timestamps: first start to last end minus long gaps."""
    spans = sorted((float(a), float(b)) for a, b in stamps if b > a)
    if not spans:
        return None
    total = spans[-1][1] - spans[0][0]
    end = spans[0][1]
    for start, stop in spans[1:]:
        if start - end >= MIN_PAUSE_S:
            total -= start - end
        end = max(end, stop)
    return total if total > 0 else None


def _two_pass_pitch(
    x: np.ndarray, sr: int, speech: np.ndarray, floor: float, ceiling: float
) -> tuple[np.ndarray, np.ndarray]:
    """Speaker-adaptive pitch range (Hirst's two-pass method) to avoid octave errors.

    A wide coarse pass finds the speaker's quartiles; the real pass then tracks within
    [0.75 * Q1, 2 * Q3], which removes octave jumps of low voices near the floor.
    """
    times, f0 = _pitch(x, sr, floor, ceiling, step=2 * HOP_S)
    first = _f0_in_speech(times, f0, speech)
    if first.size >= 5:
        q1, q3 = np.percentile(first, [25, 75])
        floor2 = max(floor, 0.75 * float(q1))
        ceiling2 = min(ceiling, 2.0 * float(q3))
        if ceiling2 > floor2 * 1.5:
            floor, ceiling = floor2, ceiling2
    return _pitch(x, sr, floor, ceiling, step=HOP_S)


def _pitch(
    x: np.ndarray, sr: int, floor: float, ceiling: float, step: float
) -> tuple[np.ndarray, np.ndarray]:
    """Praat autocorrelation pitch; empty arrays when the clip is too short to track."""
    if x.size < 3.0 / floor * sr + 1:
        return np.zeros(0), np.zeros(0)
    import parselmouth  # on first use (about 67 MB): a server nobody speaks to never loads it

    try:
        pitch = parselmouth.Sound(x, sampling_frequency=sr).to_pitch(
            time_step=step, pitch_floor=floor, pitch_ceiling=ceiling
        )
    except parselmouth.PraatError:
        return np.zeros(0), np.zeros(0)
    return np.asarray(pitch.xs()), np.asarray(pitch.selected_array["frequency"])


def _voiced_frames(times: np.ndarray, f0: np.ndarray, n_frames: int) -> np.ndarray:
    """Map Praat's pitch frames onto the energy frames (nearest frame centre)."""
    voiced = np.zeros(n_frames, dtype=bool)
    if times.size == 0 or n_frames == 0:
        return voiced
    centres = np.arange(n_frames) * HOP_S + FRAME_S / 2
    step = times[1] - times[0] if times.size > 1 else HOP_S
    idx = np.round((centres - times[0]) / step).astype(int)
    ok = (idx >= 0) & (idx < times.size)
    voiced[ok] = f0[idx[ok]] > 0
    return voiced


def _f0_in_speech(times: np.ndarray, f0: np.ndarray, speech: np.ndarray) -> np.ndarray:
    """Voiced F0 values whose time falls in a speech frame (ignores tracked noise)."""
    if times.size == 0:
        return np.zeros(0)
    idx = np.round((times - FRAME_S / 2) / HOP_S).astype(int)
    ok = (idx >= 0) & (idx < speech.size)
    keep = np.zeros(times.size, dtype=bool)
    keep[ok] = speech[idx[ok]]
    return f0[keep & (f0 > 0)]


def _empty(duration: float, words: int, syllables: int, lang: str | None) -> ProsodyResult:
    return ProsodyResult(
        duration_s=duration,
        speech_s=None,
        pitch_hz=None,
        pitch_var=None,
        pitch_std_hz=None,
        words=words,
        syllables=syllables,
        rate_wps=None,
        syllables_per_s=None,
        volume_db=None,
        volume_consistency=None,
        pause_ratio=None,
        voiced_ratio=None,
        energy=None,
        warmth=None,
        language=lang,
    )
