"""TTS and voice-reference REST routes."""

from __future__ import annotations

import asyncio
import base64
import os
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, HTTPException, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from server.api.deps import ServicesDep, UserDep
from server.logging import get_logger
from server.pipelines.speech_out import OUT_RATE, AudioConverter
from server.providers.audio_io import InvalidAudio, validate_wav, write_wav
from server.providers.tts.base import TTSError, TTSProvider, Voice
from server.services import Services

log = get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["voice"])
_MEDIA = {"mp3": "audio/mpeg", "pcm16": "audio/L16;rate=24000;channels=1", "wav": "audio/wav"}


async def synthesize_all(
    tts: TTSProvider, text: str, voice: str | None, fmt: str, user_id: str | None
) -> bytes:
    """Whole-text synthesis for REST callers, in the same formats the hub streams."""
    converter = await asyncio.to_thread(AudioConverter, "pcm16" if fmt == "wav" else fmt)
    out = bytearray()
    async for chunk in tts.synthesize(text, voice, user_id=user_id):
        data, _ = await asyncio.to_thread(converter.convert, chunk)
        out += data
    out += await asyncio.to_thread(converter.flush)
    return write_wav(bytes(out), OUT_RATE) if fmt == "wav" else bytes(out)


async def reply_audio_b64(services: Services, text: str, voice: str, user_id: str) -> str | None:
    """MP3 of a reply as base64 for POST /v1/chat; None without TTS or text."""
    if services.tts is None or not text.strip():
        return None
    try:
        audio = await synthesize_all(services.tts, text, voice, "mp3", user_id)
    except TTSError as e:
        log.warning("chat_tts_failed", error=str(e))
        return None
    return base64.b64encode(audio).decode()


class TTSRequest(BaseModel):
    text: Annotated[str, Field(min_length=1)]
    voice: Annotated[str, Field(max_length=100)] | None = None
    format: Literal["mp3", "pcm16", "wav"] = "mp3"


@router.post(
    "/tts",
    summary="Synthesize text (mp3, pcm16 24 kHz mono, or wav)",
    responses={200: {"content": {"audio/mpeg": {}}}},
)
async def tts(body: TTSRequest, services: ServicesDep, user: UserDep) -> Response:
    audio = await synthesize_request(services, body.text, body.voice, body.format, user)
    return Response(audio, media_type=_MEDIA[body.format])


async def synthesize_request(
    services: Services, text: str, voice: str | None, fmt: str, user: str
) -> bytes:
    """A REST caller's text as audio, with the limits and errors of POST /v1/tts."""
    if services.tts is None:
        raise HTTPException(503, "Text-to-speech is not available on this server.")
    if len(text) > services.settings.tts_max_chars:
        raise HTTPException(
            413, f"Text is limited to {services.settings.tts_max_chars} characters."
        )
    if not any(c.isalnum() for c in text):
        raise HTTPException(400, "The text has nothing to say (no letters or digits).")
    try:
        audio = await synthesize_all(services.tts, text, voice, fmt, user)
    except TTSError as e:
        raise HTTPException(502, f"Speech synthesis failed: {e}") from None
    await services.store.incr_usage(user, {"api_calls": 1, "tts_chars": len(text)})
    return audio


@router.get("/tts/voices", summary="Voices per provider")
async def voices(services: ServicesDep) -> dict[str, Any]:
    if services.tts is None:
        return {"voices": [], "degraded": False}
    providers = [getattr(services.tts, "primary", None), getattr(services.tts, "fallback", None)]
    found: list[Voice] = []
    for p in [x for x in providers if x is not None] or [services.tts]:
        try:
            found += await p.list_voices()
        except TTSError as e:
            log.warning("list_voices_failed", provider=p.name, error=str(e))
    return {
        "voices": [asdict(v) for v in found],
        "degraded": bool(getattr(services.tts, "degraded", False)),
    }


_INVALID = {"detail": "Invalid audio file format."}


def replace_durably(path: Path, data: bytes) -> None:
    """Write ``path`` all or nothing, and on disk before the 200: a temp file, fsynced,
    renamed over the old one, then the directory fsynced (the rename itself)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@router.post(
    "/voice",
    summary="Upload a WAV voice reference (3-60 s) for voice cloning",
    responses={400: {"description": "Invalid audio file format."}},
)
async def upload_voice(
    services: ServicesDep, user: UserDep, audio_file: Annotated[UploadFile, File()]
) -> JSONResponse:
    limit = services.settings.voice_max_bytes
    data = await audio_file.read(limit + 1)
    try:
        info = validate_wav(data, max_bytes=limit)
    except InvalidAudio as e:
        log.info("voice_rejected", reason=str(e))
        return JSONResponse(_INVALID, status_code=400)
    await asyncio.to_thread(replace_durably, services.voice_path(user), data)
    log.info("voice_saved", seconds=round(info.duration_s, 2))
    return JSONResponse({"status": "success", "message": "Voice reference updated successfully."})
