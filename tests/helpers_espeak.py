"""Offline speech for the prosody tests: espeak-ng through the server's own binding
(server.providers.tts.espeak), with espeak's word start times.

One binding for the whole process matters: libespeak-ng keeps one global callback and
parameter set, so a second binding would silently take over the server's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from server.providers.tts.espeak import synthesize_pcm16


@dataclass(frozen=True)
class Speech:
    """Synthesized speech plus espeak's own word start times (seconds)."""

    pcm: np.ndarray  # float32 mono in [-1, 1]
    rate: int
    word_starts: list[float]


def synthesize(text: str, voice: str = "en-us", *, wpm: int = 160, pitch: int = 50) -> Speech:
    """Speak ``text`` with espeak-ng and return float32 samples at its native rate."""
    starts_ms: list[int] = []
    pcm, rate = synthesize_pcm16(text, voice, wpm, pitch=pitch, on_word=starts_ms.append)
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    return Speech(audio, rate, sorted({ms / 1000.0 for ms in starts_ms}))
