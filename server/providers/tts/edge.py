"""Microsoft Edge online TTS through the ``edge-tts`` package (free, needs the internet).

MP3 (audio-24khz-48kbitrate-mono-mp3) frames are forwarded as they arrive. When the
service is unreachable we fail within ``first_audio_timeout_s`` so a fallback can take over
before the user notices the silence.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from .base import AudioChunk, TTSError, TTSProvider, Voice

EDGE_SAMPLE_RATE = 24000

# Offline answer for list_voices (the real list needs the network).
STATIC_VOICES: tuple[Voice, ...] = (
    Voice("ko-KR-SunHiNeural", "SunHi", "ko-KR", "edge", "female"),
    Voice("ko-KR-InJoonNeural", "InJoon", "ko-KR", "edge", "male"),
    Voice("ko-KR-HyunsuMultilingualNeural", "Hyunsu", "ko-KR", "edge", "male"),
    Voice("en-US-JennyNeural", "Jenny", "en-US", "edge", "female"),
    Voice("en-US-GuyNeural", "Guy", "en-US", "edge", "male"),
    Voice("en-US-AriaNeural", "Aria", "en-US", "edge", "female"),
    Voice("en-GB-SoniaNeural", "Sonia", "en-GB", "edge", "female"),
    Voice("ja-JP-NanamiNeural", "Nanami", "ja-JP", "edge", "female"),
    Voice("ja-JP-KeitaNeural", "Keita", "ja-JP", "edge", "male"),
    Voice("zh-CN-XiaoxiaoNeural", "Xiaoxiao", "zh-CN", "edge", "female"),
)


def edge_voice_for(voice_or_lang: str | None, default: str = "ko-KR-SunHiNeural") -> str:
    """Map a full edge voice id, a locale ("en-US") or a language ("ja") to an edge voice."""
    if not voice_or_lang:
        return default
    value = voice_or_lang.strip()
    if value.count("-") >= 2 and value.endswith("Neural"):
        return value  # already an edge voice id
    low = value.lower().replace("_", "-")
    for voice in STATIC_VOICES:  # exact locale first, then language
        if voice.language.lower() == low:
            return voice.id
    lang = low.split("-")[0]
    for voice in STATIC_VOICES:
        if voice.language.lower().split("-")[0] == lang:
            return voice.id
    return default


class EdgeTTS(TTSProvider):
    """Online neural voices; raises TTSError quickly when the service cannot be reached."""

    name = "edge"

    def __init__(
        self,
        default_voice: str = "ko-KR-SunHiNeural",
        *,
        rate: str = "+0%",
        volume: str = "+0%",
        pitch: str = "+0Hz",
        first_audio_timeout_s: float = 3.0,
        chunk_timeout_s: float = 10.0,
        list_voices_timeout_s: float = 3.0,
        proxy: str | None = None,
    ) -> None:
        self.default_voice = default_voice
        self.rate = rate
        self.volume = volume
        self.pitch = pitch
        self.first_audio_timeout_s = first_audio_timeout_s
        self.chunk_timeout_s = chunk_timeout_s
        self.list_voices_timeout_s = list_voices_timeout_s
        self.proxy = proxy
        self._voices: list[Voice] | None = None

    async def synthesize(
        self, text: str, voice: str | None = None, *, user_id: str | None = None
    ) -> AsyncIterator[AudioChunk]:
        """Stream MP3 frames; nothing is yielded for text with nothing to say."""
        if not any(ch.isalnum() for ch in text):
            return  # the service answers "no audio" for punctuation-only text
        import aiohttp
        import edge_tts
        from edge_tts.exceptions import EdgeTTSException, NoAudioReceived

        voice_id = edge_voice_for(voice, self.default_voice)
        try:
            communicate = edge_tts.Communicate(
                text,
                voice_id,
                rate=self.rate,
                volume=self.volume,
                pitch=self.pitch,
                proxy=self.proxy,
                connect_timeout=max(1, round(self.first_audio_timeout_s)),
                receive_timeout=max(1, round(self.chunk_timeout_s)),
            )
        except ValueError as exc:
            raise TTSError(f"edge-tts: invalid voice or prosody setting: {exc}") from exc

        got_audio = False
        try:
            async with aclosing(communicate.stream()) as stream:
                while True:
                    wait = self.chunk_timeout_s if got_audio else self.first_audio_timeout_s
                    try:
                        async with asyncio.timeout(wait):
                            message: dict[str, Any] = await anext(stream)
                    except StopAsyncIteration:
                        return
                    if message.get("type") == "audio" and message.get("data"):
                        got_audio = True
                        yield AudioChunk(message["data"], "mp3", EDGE_SAMPLE_RATE)
        except TimeoutError as exc:
            what = "audio stalled" if got_audio else "no audio"
            raise TTSError(f"edge-tts unreachable: {what} within the timeout") from exc
        except NoAudioReceived as exc:
            raise TTSError(f"edge-tts returned no audio (voice {voice_id!r})") from exc
        except (aiohttp.ClientError, OSError, EdgeTTSException) as exc:
            detail = re.sub(r" ssl:\S+ object at 0x[0-9a-f]+>", "", str(exc))
            raise TTSError(f"edge-tts unreachable: {type(exc).__name__}: {detail}") from exc

    async def list_voices(self) -> list[Voice]:
        """The service's voice list, or a small static list when offline."""
        if self._voices is not None:
            return list(self._voices)
        import edge_tts

        try:
            async with asyncio.timeout(self.list_voices_timeout_s):
                raw = await edge_tts.list_voices(proxy=self.proxy)
        except Exception:  # offline, DNS, TLS, HTTP error: any of them means "use the static list"
            return list(STATIC_VOICES)
        voices = [
            Voice(
                id=item["ShortName"],
                name=item.get("FriendlyName") or item["ShortName"],
                language=item.get("Locale", ""),
                provider=self.name,
                gender=(item.get("Gender") or "").lower() or None,
            )
            for item in raw
            if "ShortName" in item
        ]
        self._voices = voices or list(STATIC_VOICES)
        return list(self._voices)
