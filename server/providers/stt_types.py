"""What a transcription is: its result and its errors, shared by the in-process engine
(stt.py) and the remote one (stt_remote.py). Apart from the engine so that a remote client,
and anything that only reads transcripts, need not import faster-whisper's side."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

SAMPLE_RATE = 16_000


class STTError(RuntimeError):
    """Transcription failed. The message is safe to show to a user."""


class STTUnavailable(STTError):
    """The model cannot be loaded (missing path, no network for a download, bad files)."""


def clean_text(text: str) -> str:
    """A segment's words without U+FFFD: Whisper's tokens are bytes, so a decode cut by the
    token cap (a window's loop guard) can end inside a multi-byte character (Korean, emoji),
    which decodes as a replacement character. What is left of the character is no word."""
    return text.replace("\ufffd", "").strip()


class Segment(NamedTuple):
    start: float
    end: float
    text: str


class Word(NamedTuple):
    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Transcript:
    """One transcription. ``elapsed_s`` is model time only; ``wait_s`` the time queued."""

    text: str
    language: str
    segments: list[Segment]
    duration_s: float
    elapsed_s: float
    words: list[Word] | None = None
    language_probability: float = 0.0
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    wait_s: float = 0.0

    @property
    def rtf(self) -> float:
        """Real-time factor: model seconds per second of audio."""
        return self.elapsed_s / self.duration_s if self.duration_s else 0.0
