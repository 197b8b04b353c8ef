"""Mouth shapes from audio: timing, silence, and the vowel on real synthesized speech
(espeak-ng isolated vowels: Spanish a i u e o and Japanese あ い う え お, three pitches)."""

from __future__ import annotations

import numpy as np
import pytest

from server.avatar.visemes import FRAME_S, frame_visemes, viseme_keyframes
from server.providers.tts.espeak import synthesize_pcm16
from tests.speech import speak

VOWELS = [
    ("aa", "a", "あ"),
    ("ih", "i", "い"),
    ("ou", "u", "う"),
    ("ee", "e", "え"),
    ("oh", "o", "お"),
]


def pcm(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).round().astype("<i2").tobytes()


@pytest.mark.parametrize("rate", [16_000, 22_050, 24_000])
def test_keyframe_durations_sum_to_the_audio_length(rate: int) -> None:
    for text in ("Hello there, how are you today?", "Kites fly.", "Yes!"):
        data = pcm(speak(text, rate=rate))
        keys = viseme_keyframes(data, rate)
        seconds = len(data) / 2 / rate
        assert abs(sum(k.duration for k in keys) - seconds) <= 0.02
        assert all(k.duration > 0 for k in keys)
        assert {v for k in keys for v in k.targets} <= {"aa", "ih", "ou", "ee", "oh"}
        assert any(k.targets for k in keys)  # speech opens the mouth somewhere


def test_silence_gives_a_closed_mouth() -> None:
    silent = np.zeros(24_000, dtype="<i2").tobytes()
    keys = viseme_keyframes(silent, 24_000)
    assert [(round(k.duration, 3), k.targets) for k in keys] == [(1.0, {})]
    hiss = (np.random.default_rng(1).normal(0, 1e-4, 24_000) * 32767).astype("<i2").tobytes()
    assert all(v is None for v, _ in frame_visemes(hiss, 24_000))
    # speech between silences: closed before and after it, within a frame of the edges
    speech = pcm(speak("Ah", rate=24_000))
    data = (
        np.zeros(12_000, dtype="<i2").tobytes() + speech + np.zeros(12_000, dtype="<i2").tobytes()
    )
    frames = frame_visemes(data, 24_000)
    open_at = [i for i, (v, _) in enumerate(frames) if v]
    assert open_at and open_at[0] * FRAME_S >= 0.5 - FRAME_S
    assert (open_at[-1] + 1) * FRAME_S <= 0.5 + len(speech) / 2 / 24_000 + FRAME_S


def test_isolated_vowels_match_in_at_least_80_percent_of_frames() -> None:
    hits = total = 0
    per_vowel: dict[str, list[int]] = {}
    for pitch in (30, 50, 80):
        for viseme, es, ja in VOWELS:
            for text, voice in ((es, "es"), (ja, "ja")):
                data, rate = synthesize_pcm16(text, voice, pitch=pitch)
                voiced = [v for v, _ in frame_visemes(data, rate) if v]
                assert voiced, (text, voice, pitch)
                ok = sum(v == viseme for v in voiced)
                hits, total = hits + ok, total + len(voiced)
                per_vowel.setdefault(viseme, [0, 0])
                per_vowel[viseme][0] += ok
                per_vowel[viseme][1] += len(voiced)
    share = hits / total
    print(f"viseme = vowel in {hits}/{total} voiced frames ({share:.1%}); per vowel:", per_vowel)
    assert share >= 0.8
