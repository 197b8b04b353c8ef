"""A user message's `input_audio` part (OpenAI Realtime `conversation.item.create`, as the
beta JS client's sendUserMessageContent sends a recorded clip): base64 PCM16 24 kHz mono,
transcribed by our speech-to-text so the persona answers its words."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

import numpy as np

from server.hub.protocol import ProtocolError
from server.protocols.realtime_wire import IN_RATE, Resampler
from server.providers.stt import STTError

if TYPE_CHECKING:
    from server.hub.session import Session

TAIL = b"\x00\x00" * (IN_RATE // 10)  # 100 ms of silence: the resampler's filter lets go


def b64_audio(audio: Any, what: str) -> bytes:
    """The bytes of a base64 audio field, or an `invalid_audio` error saying why not."""
    if not isinstance(audio, str):
        raise ProtocolError("invalid_audio", f"{what} is a base64 string of PCM16 24 kHz mono.")
    try:
        pcm = base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("invalid_audio", f"{what} is not valid base64.") from None
    if not pcm:
        raise ProtocolError("invalid_audio", f"{what} is empty.")
    return pcm


async def transcribe_part(s: Session, part: dict[str, Any]) -> str:
    """The words of one `input_audio` part; an error names what is wrong with it."""
    pcm = b64_audio(part.get("audio"), "input_audio's audio")
    pcm = pcm[: len(pcm) - len(pcm) % 2]
    if not pcm:
        raise ProtocolError("invalid_audio", "input_audio's audio is shorter than one sample.")
    limit_s = s.settings.stt_max_segment_s
    if len(pcm) / (2 * IN_RATE) > limit_s:
        raise ProtocolError("invalid_audio", f"input_audio is limited to {limit_s:g} s.")
    stt = s.services.stt
    if stt is None:
        raise ProtocolError("not_supported", "Audio input is not enabled on this server.")
    try:
        if not stt.loaded:  # still loading at start-up: wait for it
            await stt.aload()
        samples = np.frombuffer(Resampler()(pcm + TAIL), dtype="<i2").astype(np.float32)
        heard = await stt.atranscribe(samples / 32768.0, s.stt_language())
    except STTError as e:
        raise ProtocolError("stt_failed", f"input_audio could not be transcribed: {e}") from None
    return heard.text.strip()
