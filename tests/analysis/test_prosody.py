"""Prosody on signals with known ground truth, and on real (espeak-ng) synthetic speech."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.prosody import (
    MIN_PAUSE_S,
    analyze_prosody,
    count_units,
    detect_script_language,
    energy_score,
    warmth_score,
)
from tests.helpers_espeak import synthesize

SR = 16000
SENTENCE = (
    "Hello there. I went to the market today, and it was really busy, "
    "but I found everything I needed."
)


def glide(f_start: float, f_end: float, seconds: float, peak: float = 0.3) -> np.ndarray:
    """Harmonic-rich (sawtooth-like) tone whose F0 moves linearly; voice-like for Praat."""
    n = int(seconds * SR)
    f0 = np.linspace(f_start, f_end, n)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 8))
    return (peak * x / np.max(np.abs(x))).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), np.float32)


def rms_dbfs(x: np.ndarray) -> float:
    return 20 * math.log10(float(np.sqrt(np.mean(x.astype(np.float64) ** 2))))


def test_glide_mean_pitch_and_semitone_spread() -> None:
    x = glide(150, 250, 2.0)
    r = analyze_prosody(x, SR, "a gliding tone")
    true_f0 = np.linspace(150, 250, x.size)
    assert r.pitch_hz == pytest.approx(true_f0.mean(), abs=3)
    true_st = 12 * np.log2(true_f0 / true_f0.mean())
    assert r.pitch_var == pytest.approx(float(true_st.std()), abs=0.15)
    assert r.pitch_std_hz == pytest.approx(float(true_f0.std()), rel=0.05)
    assert r.duration_s == pytest.approx(2.0)
    assert r.voiced_ratio is not None and r.voiced_ratio > 0.95
    assert r.pause_ratio == 0.0


def test_loudness_matches_rms_and_tracks_gain() -> None:
    x = glide(200, 200, 1.5, peak=0.5)
    loud = analyze_prosody(x, SR, "tone")
    quiet = analyze_prosody(x * 0.25, SR, "tone")
    assert loud.volume_db == pytest.approx(rms_dbfs(x), abs=0.3)
    assert loud.volume_db - quiet.volume_db == pytest.approx(20 * math.log10(4), abs=0.2)
    assert loud.volume_consistency is not None and loud.volume_consistency > 0.95
    assert loud.energy is not None and quiet.energy is not None and loud.energy > quiet.energy
    # Flat pitch and constant level: steady but monotone.
    assert loud.pitch_var is not None and loud.pitch_var < 0.05


def test_uneven_loudness_lowers_consistency() -> None:
    steady = np.concatenate([glide(180, 180, 1.0), silence(0.3), glide(180, 180, 1.0)])
    # Second phrase 20 dB quieter (a trailing-off voice), separated by a short pause.
    uneven = np.concatenate([glide(180, 180, 1.0, 0.5), silence(0.3), glide(180, 180, 1.0, 0.05)])
    a = analyze_prosody(steady, SR, "x").volume_consistency
    b = analyze_prosody(uneven, SR, "x").volume_consistency
    assert a is not None and b is not None and b < a - 0.3


@pytest.mark.parametrize(("a", "gap", "c"), [(1.0, 1.0, 1.0), (1.5, 0.5, 0.5), (0.6, 1.8, 0.6)])
def test_pause_ratio_of_tone_silence_tone(a: float, gap: float, c: float) -> None:
    x = np.concatenate([silence(0.7), glide(200, 200, a), silence(gap), glide(200, 200, c)])
    x = np.concatenate([x, silence(0.4)])  # leading/trailing silence is not a pause
    r = analyze_prosody(x, SR, "one two three four")
    assert r.pause_ratio == pytest.approx(gap / (a + gap + c), abs=0.02)
    assert r.speech_s == pytest.approx(a + c, abs=0.05)
    assert r.rate_wps == pytest.approx(4 / (a + c), rel=0.05)
    assert r.duration_s == pytest.approx(x.size / SR)


def test_short_gaps_are_articulation_not_pauses() -> None:
    gap = MIN_PAUSE_S / 3
    parts = []
    for _ in range(5):
        parts += [glide(200, 200, 0.3), silence(gap)]
    r = analyze_prosody(np.concatenate(parts[:-1]), SR, "a b c d e")
    assert r.pause_ratio == 0.0


def test_word_timestamps_set_the_speaking_time() -> None:
    x = glide(200, 200, 3.0)
    stamps = [(0.0, 0.5), (0.5, 1.0), (2.0, 2.5)]  # one 1 s gap between words
    r = analyze_prosody(x, SR, "three little words", word_timestamps=stamps)
    assert r.rate_wps == pytest.approx(3 / 1.5)
    r2 = analyze_prosody(x, SR, "", word_timestamps=stamps)
    assert r2.words == 3


@pytest.mark.parametrize(
    "pcm",
    [
        np.zeros(2 * SR, np.float32),
        (np.random.default_rng(0).standard_normal(SR) * 1e-4).astype(np.float32),  # -80 dBFS
        np.zeros(100, np.float32),
        np.zeros(0, np.float32),
        np.full(SR, np.nan, np.float32),
    ],
    ids=["silence", "faint-noise", "too-short", "empty", "nan"],
)
def test_silence_and_degenerate_input_give_none_fields(pcm: np.ndarray) -> None:
    r = analyze_prosody(pcm, SR, "hello world")
    assert r.duration_s == pytest.approx(pcm.size / SR)
    assert r.words == 2
    for field in ("pitch_hz", "pitch_var", "rate_wps", "volume_db", "pause_ratio", "energy"):
        assert getattr(r, field) is None, field


def test_too_short_for_pitch_keeps_loudness() -> None:
    x = glide(200, 200, 0.045)  # a few energy frames, too few for a pitch estimate
    r = analyze_prosody(x, SR, "")
    assert r.pitch_hz is None
    assert r.volume_db == pytest.approx(rms_dbfs(x), abs=1.0)


def test_int16_and_stereo_input_are_accepted() -> None:
    x = glide(220, 220, 1.0, 0.5)
    as_int = (x * 32767).astype(np.int16)
    stereo = np.stack([x, x], axis=1)
    base = analyze_prosody(x, SR, "x")
    for variant in (as_int, stereo):
        r = analyze_prosody(variant, SR, "x")
        assert r.pitch_hz == pytest.approx(base.pitch_hz, abs=0.5)
        assert r.volume_db == pytest.approx(base.volume_db, abs=0.1)
    with pytest.raises(ValueError):
        analyze_prosody(x, 0, "x")


# --------------------------------------------------------------------------- synthetic speech


def test_espeak_english_speech_is_in_human_range() -> None:
    speech = synthesize(SENTENCE)
    r = analyze_prosody(speech.pcm, speech.rate, SENTENCE, "en")
    assert r.pitch_hz is not None and 80 <= r.pitch_hz <= 300
    assert r.pitch_var is not None and 0.3 < r.pitch_var < 6
    assert r.words == 19
    assert r.rate_wps is not None and 1.5 <= r.rate_wps <= 5.0
    assert r.syllables_per_s is not None and 2.5 <= r.syllables_per_s <= 8.0
    assert r.pause_ratio is not None and 0.0 < r.pause_ratio < 0.4  # commas and the full stop
    assert r.volume_db is not None and -40 < r.volume_db < -3
    assert r.energy is not None and 0 <= r.energy <= 1
    assert r.warmth is not None and 0 <= r.warmth <= 1


def test_espeak_voice_settings_move_pitch_and_rate() -> None:
    low = analyze_prosody(*_speak(pitch=20, wpm=130), SENTENCE)
    high = analyze_prosody(*_speak(pitch=90, wpm=260), SENTENCE)
    assert low.pitch_hz is not None and high.pitch_hz is not None
    assert high.pitch_hz > low.pitch_hz * 1.2
    assert high.rate_wps is not None and low.rate_wps is not None
    assert high.rate_wps > low.rate_wps * 1.4


def test_espeak_word_events_as_timestamps_agree_with_energy_rate() -> None:
    speech = synthesize(SENTENCE)
    ends = [*speech.word_starts[1:], speech.pcm.size / speech.rate]
    stamps = list(zip(speech.word_starts, ends, strict=True))
    by_energy = analyze_prosody(speech.pcm, speech.rate, SENTENCE)
    by_stamps = analyze_prosody(speech.pcm, speech.rate, SENTENCE, word_timestamps=stamps)
    assert by_stamps.rate_wps == pytest.approx(by_energy.rate_wps, rel=0.25)


def test_espeak_korean_speech_counts_syllables() -> None:
    text = "안녕하세요. 오늘 날씨가 정말 좋네요."
    speech = synthesize(text, "ko")
    r = analyze_prosody(speech.pcm, speech.rate, text)
    assert r.language == "ko"
    assert r.words == 5 and r.syllables == 15
    assert r.pitch_hz is not None and 80 <= r.pitch_hz <= 300
    assert r.syllables_per_s is not None and 2.0 <= r.syllables_per_s <= 9.0


def _speak(*, pitch: int, wpm: int) -> tuple[np.ndarray, int]:
    s = synthesize(SENTENCE, pitch=pitch, wpm=wpm)
    return s.pcm, s.rate


# --------------------------------------------------------------------------- text and scores


@pytest.mark.parametrize(
    ("text", "language", "words", "syllables"),
    [
        ("I went to the market today", "en", 6, 8),
        ("안녕하세요. 오늘 날씨가 좋네요!", "ko", 4, 13),
        ("Netflix 보고 싶어요", "ko", 3, 7),
        ("我今天很高兴", "zh", 4, 6),
        ("", None, 0, 0),
        ("... !!", None, 0, 0),
    ],
)
def test_count_units(text: str, language: str | None, words: int, syllables: int) -> None:
    assert count_units(text) == (words, syllables)
    assert detect_script_language(text) == language


def test_tone_scores_are_bounded_and_monotonic() -> None:
    assert energy_score(None, None, None) is None
    calm = energy_score(-35.0, 0.5, 3.0)
    lively = energy_score(-18.0, 3.5, 6.0)
    assert calm is not None and lively is not None and 0 <= calm < lively <= 1
    flat = warmth_score(-25.0, 0.2, 4.0, 0.8)
    melodic = warmth_score(-25.0, 2.5, 4.0, 0.8)
    shouted = warmth_score(-5.0, 2.5, 8.5, 0.3)
    assert flat is not None and melodic is not None and shouted is not None
    assert flat < melodic and shouted < melodic and 0 <= shouted <= 1
