"""A reply's speech out: its text fed to TTS sentence by sentence, its audio, sentences
and visemes sent through the protocol, and the wait while the client plays it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from server.avatar.visemes import Keyframe
from server.hub.active_response import ActiveResponse
from server.hub.core import SessionCore
from server.pipelines.chunker import SentenceChunker
from server.pipelines.speech_out import SpeechOut, SpokenChunk


class ReplySpeech(SessionCore):
    """Mixed into Session (through Responses): the current reply's audio."""

    _warned_tts: bool = False
    perception: Any

    def new_speech(self, r: ActiveResponse, fmt: Any) -> SpeechOut:
        async def send_audio(seq: int, data: bytes) -> None:
            await self.events.audio_chunk(r, seq, data)

        async def sentence_done(chunk: SpokenChunk) -> None:
            assert r.speech is not None
            await self.events.speech_sentence(r, len(r.speech.spoken) - 1, chunk)

        async def visemes(seq: int, keys: list[Keyframe], emotion: str | None) -> None:
            await self.events.audio_visemes(r, seq, [k.as_dict() for k in keys], emotion)

        return SpeechOut(
            self.services.tts,
            self.config["voice"] or self.persona.tts_voice,
            fmt,
            r.number,
            send_audio,
            user_id=self.user_id,
            chunker=SentenceChunker(first_words=self._first_chunk_words()),
            on_sentence=sentence_done,
            on_visemes=visemes
            if self.settings.avatar_visemes and self.events.wants_visemes()
            else None,
            on_pcm=self.perception.reply_audio_tap(r.number),
        )

    def _first_chunk_words(self) -> int:
        """TTS_FIRST_CHUNK_WORDS, else what the engine speaking now needs (an online one
        must hide its next chunk's synthesis behind the first chunk's audio)."""
        words = self.settings.tts_first_chunk_words
        return getattr(self.services.tts, "first_chunk_words", 4) if words is None else words

    async def on_reply_delta(self, r: ActiveResponse, delta: str) -> None:
        if r.speech is not None:
            r.speech.feed(delta)

    async def on_reply_text_done(self, r: ActiveResponse) -> None:
        """Text is complete: finish its audio, then stay active while the client plays it
        (so speech over the reply is a barge-in until the last word was heard)."""
        if r.speech is None or r.speech_task is None:
            r.generated_at = time.monotonic()
            return
        r.speech.finish()
        await r.speech_task
        r.generated_at = time.monotonic()
        r.first_audio_at = r.speech.first_audio_at
        await self._warn_tts(r.speech)
        await self.events.audio_done(r, r.speech.seq, round(r.speech.duration_ms))
        if r.first_audio_at is None or not self.events.awaits_playback:
            return
        left = r.speech.duration_ms / 1000 - (time.monotonic() - r.first_audio_at)
        if (r.played_ms or 0) >= r.speech.duration_ms - 100:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, left) + self.settings.playback_grace_ms / 1000):
                await r.playback_done.wait()

    async def _warn_tts(self, speech: SpeechOut) -> None:
        if speech.error:
            await self.warn("tts_failed", f"Reply audio stopped: {speech.error}")
        tts = self.services.tts
        if not self._warned_tts and getattr(tts, "degraded", False):
            self._warned_tts = True
            await self.warn(
                "tts_degraded",
                "The online voice service is unreachable; replies use the offline voice "
                f"(espeak-ng) for now. ({getattr(tts, 'degraded_reason', '')})",
            )

    async def _stop_speech(self, r: ActiveResponse) -> None:
        if r.speech_task is not None and not r.speech_task.done():
            r.speech_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await r.speech_task
        if r.speech is not None:
            r.first_audio_at = r.speech.first_audio_at
