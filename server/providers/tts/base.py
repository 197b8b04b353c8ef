"""TTS provider contract: one async generator of audio chunks per provider.

Heavy libraries are imported lazily inside providers; blocking calls run in
``asyncio.to_thread`` so the event loop stays free.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

AudioFormatName = Literal["mp3", "pcm16", "wav"]


class TTSError(Exception):
    """Synthesis failed (unreachable service, bad voice, ...). Message is user-safe."""


@dataclass(frozen=True)
class AudioChunk:
    data: bytes
    format: AudioFormatName
    sample_rate: int


@dataclass(frozen=True)
class Voice:
    id: str
    name: str
    language: str
    provider: str
    gender: str | None = None


class TTSProvider(ABC):
    name: str = "base"
    # Words the reply's first chunk waits for (TTS_FIRST_CHUNK_WORDS unset). A short first
    # chunk starts the audio sooner, but its audio must last while the engine makes the next
    # chunk's first audio: an online engine (edge-tts, Fish Speech: hundreds of ms to first
    # audio, one request at a time) needs about 4 words; bench/first_chunk.py measures it.
    first_chunk_words: int = 4

    @abstractmethod
    def synthesize(
        self, text: str, voice: str | None = None, *, user_id: str | None = None
    ) -> AsyncIterator[AudioChunk]:
        """Yield audio chunks for ``text`` as soon as they exist. Raise TTSError on failure."""

    @abstractmethod
    async def list_voices(self) -> list[Voice]: ...

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""
