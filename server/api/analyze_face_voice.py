"""REST analysis of uploads: a face in an image (POST /v1/analyze/face) and the voice in an
audio file (POST /v1/voice/analyze), with the same analysers the live session uses.

Why here and not in the hub: clients without a WebSocket (scripts, batch jobs, the studio's
"analyse a file" button) get the same numbers for one file."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from pydantic import BaseModel
from starlette.datastructures import UploadFile as StarletteUploadFile

from analysis.face import FaceTracker
from server.api.deps import ServicesDep, UserDep
from server.logging import get_logger
from server.pipelines.face import MAX_CAMERA_PIXELS
from server.pipelines.screen_image import check_image
from server.pipelines.voice_analysis import analyse_voice, prosody_dict, words_dict
from server.providers.audio_io import InvalidAudio, decode_audio
from server.providers.face import FaceLandmarkerProvider, FaceModelUnavailable, InvalidImage
from server.providers.stt import STTError

log = get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["analysis"])

_FACE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {"image": {"type": "string", "format": "binary"}},
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["image_b64"],
                    "properties": {"image_b64": {"type": "string", "format": "byte"}},
                }
            },
        },
    }
}


class FaceAnalysis(BaseModel):
    face_found: bool
    emotion: str | None = None
    emotion_scores: dict[str, float] | None = None
    confidence: float | None = None
    head_pose: dict[str, float] | None = None
    landmarks_count: int = 0


class VoiceAnalysisResponse(BaseModel):
    transcript: str
    language: str
    duration_s: float
    prosody: dict[str, Any]
    words: dict[str, Any]


def analyse_face_image(provider: FaceLandmarkerProvider, data: bytes) -> FaceAnalysis:
    """Blocking (face executor): detect, then one tracker frame for emotion and head pose."""
    det = provider.detect_jpeg(data)
    if det is None:
        return FaceAnalysis(face_found=False)
    r = FaceTracker(det.width, det.height).update(
        det.landmarks.astype(float), det.blendshapes or None, 0.0
    )
    return FaceAnalysis(
        face_found=True,
        emotion=r.emotion,
        emotion_scores={k: round(v, 4) for k, v in r.emotion_scores.items()},
        confidence=round(r.emotion_confidence, 4),
        head_pose={k: round(v, 2) for k, v in r.head_pose.as_dict().items()},
        landmarks_count=len(det.landmarks),
    )


async def _image_bytes(request: Request, limit: int) -> bytes:
    """The uploaded image from multipart `image` or JSON `image_b64`, at most `limit` bytes."""
    too_big = HTTPException(413, f"The image is larger than the limit of {limit} bytes.")
    if int(request.headers.get("content-length") or 0) > limit * 4 // 3 + 65_536:
        raise too_big
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=4)
        image = form.get("image")
        if not isinstance(image, StarletteUploadFile):
            raise HTTPException(400, "Send the image as the multipart file field 'image'.")
        data = await image.read(limit + 1)
    elif ctype == "application/json":
        try:
            body = json.loads(await request.body())
            data = base64.b64decode(body["image_b64"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise HTTPException(
                400, 'Send JSON {"image_b64": "<base64 JPEG or PNG>"} with valid base64.'
            ) from None
    else:
        raise HTTPException(
            415, "Send multipart/form-data with an 'image' file, or JSON with 'image_b64'."
        )
    if len(data) > limit:
        raise too_big
    if not data:
        raise HTTPException(400, "The image is empty.")
    return data


@router.post(
    "/analyze/face",
    response_model=FaceAnalysis,
    summary="Emotion and head pose of the face in a JPEG/PNG image",
    openapi_extra=_FACE_BODY,
    responses={400: {"description": "Not a decodable image"}, 503: {"description": "No model"}},
)
async def analyze_face(request: Request, services: ServicesDep, user: UserDep) -> FaceAnalysis:
    provider = services.face
    if provider is None:
        raise HTTPException(503, "Face analysis is disabled on this server (FACE_ENABLED=false).")
    data = await _image_bytes(request, services.settings.max_image_bytes)
    if why := check_image(data, MAX_CAMERA_PIXELS):
        raise HTTPException(400, f"Invalid image: {why}. Send a JPEG or PNG.")
    loop = asyncio.get_running_loop()
    try:
        result = await loop.run_in_executor(
            services.face_executor, analyse_face_image, provider, data
        )
    except InvalidImage as e:
        raise HTTPException(400, f"Invalid image: {e}. Send a JPEG or PNG.") from None
    except FaceModelUnavailable as e:
        services.face_model_status("error", str(e))
        raise HTTPException(503, f"Face analysis is unavailable: {e}") from None
    services.face_model_status("ready", "")
    await services.store.incr_usage(user, {"api_calls": 1})
    return result


@router.post(
    "/voice/analyze",
    response_model=VoiceAnalysisResponse,
    summary="Transcript, prosody and word choice of an audio file (wav/mp3/webm/ogg)",
    responses={400: {"description": "Not decodable audio"}, 503: {"description": "No STT"}},
)
async def analyze_voice(
    services: ServicesDep,
    user: UserDep,
    audio_file: Annotated[UploadFile, File(description="wav, mp3, webm or ogg audio")],
    language: Annotated[
        str | None, Form(max_length=16, description="e.g. 'en' or 'ko'; unset = detect")
    ] = None,
) -> VoiceAnalysisResponse:
    stt = services.stt
    # a remote server is asked even when its last request failed: it may be back
    if stt is None or not stt.loaded:
        why = services.details.get("stt") or services.modules.get("stt", "disabled")
        raise HTTPException(503, f"Speech-to-text is not ready ({why}); try again later.")
    limit = services.settings.voice_max_bytes
    data = await audio_file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"The audio file is larger than the limit of {limit} bytes.")
    try:
        audio = await asyncio.to_thread(
            decode_audio, data, 16_000, max_s=services.settings.voice_analyze_max_s
        )
    except InvalidAudio as e:
        raise HTTPException(
            400, f"Invalid audio file: {e}. Send wav, mp3, webm or ogg audio."
        ) from None
    try:
        transcript = await stt.atranscribe(audio, language, word_timestamps=True)
    except STTError as e:
        raise HTTPException(503, f"Speech-to-text failed: {e}") from None
    prosody, words = await asyncio.to_thread(analyse_voice, audio, transcript)
    await services.store.incr_usage(user, {"api_calls": 1})
    return VoiceAnalysisResponse(
        transcript=transcript.text,
        language=transcript.language,
        duration_s=round(audio.size / 16_000, 2),
        prosody=prosody_dict(prosody),
        words=words_dict(words),
    )
