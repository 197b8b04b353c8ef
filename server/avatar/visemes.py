"""Mouth shapes from the reply audio itself: the VRM visemes aa, ih, ou, ee, oh (Japanese
a, i, u, e, o), closed at silence, on a 20 ms grid.

Why from the audio: it works for every TTS provider, cloned voices included, with no
provider timings. Each voiced frame's first two formants (Praat's Burg analysis, through
praat-parselmouth) are matched to the nearest vowel in log-frequency space; quiet frames and
frames without clear formants close the mouth. Loudness sets how far the mouth opens."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_praat: Any = None


def praat() -> Any:
    """parselmouth, imported on first use: about 67 MB, and ~1 s the first time, so a
    server whose sessions speak no audio never loads it (SpeechOut warms it in a thread as
    a reply with visemes starts)."""
    global _praat
    if _praat is None:
        import parselmouth

        _praat = parselmouth
    return _praat


VISEMES = ("aa", "ih", "ou", "ee", "oh")
FRAME_S = 0.02  # one mouth shape per 20 ms: within half a frame (10 ms) of the audio
# Typical (F1, F2) in Hz of the five vowels, adult voices (Japanese a i u e o).
PROTOTYPES = {
    "aa": (800.0, 1300.0),
    "ih": (300.0, 2250.0),
    "ou": (340.0, 1000.0),
    "ee": (480.0, 1900.0),
    "oh": (530.0, 850.0),
}
_LOG_PROTO = {k: (math.log(f1), math.log(f2)) for k, (f1, f2) in PROTOTYPES.items()}
F2_WEIGHT = 0.8  # F2 varies more between speakers than F1 does
SILENCE_DBFS = -45.0  # frames quieter than this (or 30 dB under the loudest) are closed
RANGE_DB = 30.0
MAX_FORMANT_HZ = 5000.0  # Praat's advice for adult voices; 5500 merges F1 and F2 of /u/ and /o/


@dataclass
class Keyframe:
    """desktop-homunculus TimelineKeyframe: hold ``targets`` for ``duration`` seconds."""

    duration: float
    targets: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"duration": round(self.duration, 4), "targets": self.targets}


def nearest_vowel(f1: float, f2: float) -> str:
    l1, l2 = math.log(f1), math.log(f2)
    return min(
        _LOG_PROTO,
        key=lambda k: (l1 - _LOG_PROTO[k][0]) ** 2 + F2_WEIGHT * (l2 - _LOG_PROTO[k][1]) ** 2,
    )


def frame_visemes(pcm16: bytes, rate: int) -> list[tuple[str | None, float]]:
    """(viseme or None for closed, opening 0..1) per 20 ms frame of PCM16 mono audio."""
    x = np.frombuffer(pcm16, dtype="<i2").astype(np.float64) / 32768.0
    hop = max(1, round(rate * FRAME_S))
    n = -(-x.size // hop)
    if n == 0:
        return []
    padded = np.zeros(n * hop)
    padded[: x.size] = x
    rms = np.sqrt(np.mean(padded.reshape(n, hop) ** 2, axis=1))
    db = 20 * np.log10(np.maximum(rms, 1e-9))
    floor = max(SILENCE_DBFS, float(db.max()) - RANGE_DB)
    loud = db >= floor
    out: list[tuple[str | None, float]] = [(None, 0.0)] * n
    if not loud.any() or x.size < 2 * hop:
        return out
    snd = praat().Sound(x, sampling_frequency=rate)
    formants = snd.to_formant_burg(
        time_step=FRAME_S, max_number_of_formants=5, maximum_formant=MAX_FORMANT_HZ
    )
    for i in np.flatnonzero(loud):
        t = (i + 0.5) * FRAME_S
        f1 = formants.get_value_at_time(1, t)
        f2 = formants.get_value_at_time(2, t)
        if not (f1 > 150 and f2 > f1 and math.isfinite(f1) and math.isfinite(f2)):
            continue
        opening = min(1.0, max(0.3, (float(db[i]) - floor) / 20.0))
        out[i] = (nearest_vowel(f1, f2), round(opening, 1))
    return out


def viseme_keyframes(pcm16: bytes, rate: int) -> list[Keyframe]:
    """The mouth timeline of the audio: consecutive equal frames merged; the durations add
    up to the audio's length exactly (the last frame is cut to it)."""
    total = len(pcm16) // 2 / rate if rate > 0 else 0.0
    frames = frame_visemes(pcm16, rate)
    if not frames:
        return [Keyframe(total, {})] if total > 0 else []
    keys: list[Keyframe] = []
    last: tuple[str | None, float] | None = None
    for shape in frames:
        if shape == last:
            keys[-1].duration += FRAME_S
            continue
        vis, opening = shape
        keys.append(Keyframe(FRAME_S, {vis: opening} if vis else {}))
        last = shape
    keys[-1].duration -= len(frames) * FRAME_S - total  # the last frame is partial
    if keys[-1].duration <= 1e-9:
        keys.pop()
    return keys
