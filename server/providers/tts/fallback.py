"""Primary TTS with an automatic switch to a fallback (edge-tts -> espeak-ng by default).

Why: a companion that goes silent when the internet drops feels broken; a robotic voice is
better than none. The switch happens only before the primary produced audio for a text, so
one utterance never mixes two voices. While degraded we skip the primary (no timeout per
sentence) and probe it again at most every ``retry_after_s`` seconds, in the background with
a short text: on an unreachable network a probe can take seconds, which must never hold up
a reply that the fallback can speak now.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing

import structlog

from .base import AudioChunk, TTSError, TTSProvider, Voice

log = structlog.get_logger(__name__)

VoiceMap = Callable[[str | None], str | None]
PROBE_TEXT = "Hello."


class FallbackTTS(TTSProvider):
    """Try ``primary``; on failure before any audio, speak with ``fallback`` instead."""

    name = "fallback"

    def __init__(
        self,
        primary: TTSProvider,
        fallback: TTSProvider,
        on_degraded: Callable[[str], None] | None = None,
        retry_after_s: float = 60.0,
        *,
        on_recovered: Callable[[], None] | None = None,
        first_chunk_timeout_s: float | None = 8.0,
        fallback_voice: VoiceMap | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.on_degraded = on_degraded
        self.on_recovered = on_recovered
        self.retry_after_s = retry_after_s
        self.first_chunk_timeout_s = first_chunk_timeout_s
        self._fallback_voice = fallback_voice
        self._clock = clock
        self._degraded = False
        self._degraded_reason: str | None = None
        self._last_probe = 0.0
        self.probe: asyncio.Task[None] | None = None  # the background probe in flight

    @property
    def first_chunk_words(self) -> int:
        """The first chunk of the engine that speaks now."""
        return (self.fallback if self._degraded else self.primary).first_chunk_words

    @property
    def degraded(self) -> bool:
        """True while the fallback is speaking because the primary failed."""
        return self._degraded

    @property
    def degraded_reason(self) -> str | None:
        """The primary's last failure while degraded, else None."""
        return self._degraded_reason

    def _mark_degraded(self, reason: str) -> None:
        self._last_probe = self._clock()
        self._degraded_reason = reason
        if self._degraded:
            return
        self._degraded = True  # set before the callback: a re-entrant call sees the new state
        log.warning("tts.degraded", primary=self.primary.name, reason=reason)
        if self.on_degraded is not None:
            self.on_degraded(reason)

    def _mark_recovered(self) -> None:
        if not self._degraded:
            return
        self._degraded = False
        self._degraded_reason = None
        log.info("tts.recovered", primary=self.primary.name)
        if self.on_recovered is not None:
            self.on_recovered()

    def _should_try_primary(self, voice: str | None, user_id: str | None) -> bool:
        if not self._degraded:
            return True
        now = self._clock()
        if now - self._last_probe >= self.retry_after_s and self.probe is None:
            self._last_probe = now
            self.probe = asyncio.create_task(self._probe(voice, user_id), name="tts-probe")
        return False

    async def _probe(self, voice: str | None, user_id: str | None) -> None:
        """Is the primary back? One short synthesis, up to its first chunk of audio."""
        try:
            async with asyncio.timeout(self.first_chunk_timeout_s):
                async with aclosing(
                    self.primary.synthesize(PROBE_TEXT, voice, user_id=user_id)
                ) as it:
                    await anext(it)
        except TimeoutError:
            self._mark_degraded(f"{self.primary.name}: timed out before first audio")
        except (TTSError, StopAsyncIteration) as exc:
            self._mark_degraded(str(exc) or f"{self.primary.name}: no audio for the probe")
        else:
            self._mark_recovered()
        finally:
            self.probe = None

    async def _map_voice(self, voice: str | None) -> str | None:
        """Give the fallback a voice in the same language as the primary's voice."""
        wanted = voice or getattr(self.primary, "default_voice", None)
        if self._fallback_voice is not None:
            return self._fallback_voice(wanted)
        from .espeak import EspeakTTS, espeak_voice_for

        if isinstance(self.fallback, EspeakTTS):
            if wanted is None:
                return None
            # The first call loads libespeak-ng: keep it off the event loop.
            return await asyncio.to_thread(espeak_voice_for, wanted)
        return None  # a foreign voice id would fail: use the fallback's own default

    async def synthesize(
        self, text: str, voice: str | None = None, *, user_id: str | None = None
    ) -> AsyncIterator[AudioChunk]:
        """Yield the primary's audio, or the fallback's when the primary fails up front."""
        if self._should_try_primary(voice, user_id):
            got_audio = False
            try:
                async with aclosing(self.primary.synthesize(text, voice, user_id=user_id)) as it:
                    while True:
                        try:
                            if got_audio or self.first_chunk_timeout_s is None:
                                chunk = await anext(it)
                            else:
                                async with asyncio.timeout(self.first_chunk_timeout_s):
                                    chunk = await anext(it)
                        except StopAsyncIteration:
                            break
                        got_audio = True
                        yield chunk
                self._mark_recovered()
                return
            except (TTSError, TimeoutError) as exc:
                reason = str(exc) or f"{self.primary.name}: timed out before first audio"
                self._mark_degraded(reason)
                if got_audio:
                    # Splicing a second voice into a half-spoken sentence sounds worse.
                    raise TTSError(f"{self.primary.name} failed mid-utterance: {reason}") from exc
        fallback_voice = await self._map_voice(voice)
        try:
            async with aclosing(
                self.fallback.synthesize(text, fallback_voice, user_id=user_id)
            ) as it:
                async for chunk in it:
                    yield chunk
        except TTSError as exc:
            raise TTSError(
                f"{self.fallback.name} fallback failed too: {exc}"
                f" (primary: {self._degraded_reason})"
            ) from exc

    async def list_voices(self) -> list[Voice]:
        """The primary's voices then the fallback's; an unreachable primary is skipped."""
        voices: list[Voice] = []
        for provider in (self.primary, self.fallback):
            try:
                voices.extend(await provider.list_voices())
            except TTSError as exc:
                log.warning("tts.list_voices_failed", provider=provider.name, error=str(exc))
        return voices

    async def close(self) -> None:
        """Stop a probe in flight and close both providers."""
        if self.probe is not None:
            self.probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.probe
        for provider in (self.primary, self.fallback):
            await provider.close()
