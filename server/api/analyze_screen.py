"""POST /v1/analyze/screen: structured reading of one uploaded screenshot (what is on it,
what can be clicked where, what to do next), via the VLM's structured output."""

from __future__ import annotations

import asyncio
import base64
import binascii
import re

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from analysis.screen import InvalidImage
from server.api.deps import ServicesDep, UserDep
from server.logging import get_logger
from server.pipelines.screen_image import check_image, prepare
from server.providers.vlm import ScreenAnalysis, VisionError

log = get_logger(__name__)
router = APIRouter(prefix="/v1/analyze", tags=["analysis"])

_DATA_URL = re.compile(r"^data:image/[\w.+-]+;base64,", re.I)


class AnalyzeScreenRequest(BaseModel):
    session_id: str | None = Field(
        default=None, description="One of the caller's sessions, for usage and context."
    )
    screenshot: str = Field(
        min_length=1,
        description="Base64 JPEG, PNG or WebP (a data:image/...;base64, prefix is accepted).",
    )
    context: str | None = Field(
        default=None,
        max_length=2000,
        description="What the user is trying to do, to focus the analysis.",
    )


class AnalyzeScreenResponse(BaseModel):
    analysis: ScreenAnalysis


def decode_screenshot(b64: str, max_bytes: int, *, full_decode: bool = True) -> bytes:
    """base64 (or a data URL) -> checked image bytes; raises ValueError with the reason.
    ``full_decode=False`` checks only the header (format, pixel limit): for callers that
    decode the image themselves anyway.

    Runs in a worker thread: decoding and validating a large screenshot is CPU work."""
    text = _DATA_URL.sub("", b64.strip(), count=1)
    if len(text) > (max_bytes + 2) // 3 * 4 + 4:
        raise OverflowError(f"the screenshot is larger than {max_bytes} bytes")
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("screenshot is not valid base64") from None
    if not full_decode:
        if why := check_image(data):
            raise ValueError(why)
        return data
    try:
        prepare(data)  # header check, size limit and a full decode
    except InvalidImage as e:
        raise ValueError(str(e)) from None
    return data


@router.post(
    "/screen",
    response_model=AnalyzeScreenResponse,
    summary="Analyse a screenshot: screen summary, actionable elements, recommended action",
    responses={
        400: {"description": "Invalid image"},
        404: {"description": "session_id is not one of the caller's sessions"},
        413: {"description": "Screenshot too large"},
        502: {"description": "The vision model failed"},
        503: {"description": "No vision model configured"},
    },
)
async def analyze_screen(
    body: AnalyzeScreenRequest, services: ServicesDep, user: UserDep
) -> AnalyzeScreenResponse:
    vision = services.vision
    if vision is None:
        raise HTTPException(
            503,
            "Screen analysis is unavailable: no vision model is configured "
            "(set VLM_BASE_URL and VLM_MODEL, or LLM_BASE_URL).",
        )
    if body.session_id and await services.store.get_session(user, body.session_id) is None:
        raise HTTPException(404, "No such session for this user.")
    try:
        image = await asyncio.to_thread(
            decode_screenshot, body.screenshot, services.settings.max_image_bytes
        )
    except OverflowError as e:
        raise HTTPException(413, f"Invalid image: {e}.") from None
    except ValueError as e:
        raise HTTPException(400, f"Invalid image: {e}.") from None
    try:
        analysis = await vision.analyze_screen(image, body.context)
    except VisionError as e:
        log.warning("screen_analysis_failed", error=str(e), status=e.status)
        await services.store.incr_usage(user, {"api_calls": 1, "vlm_calls": 1})
        raise HTTPException(502, f"The vision model could not analyse the screen: {e}") from None
    await services.store.incr_usage(user, {"api_calls": 1, "vlm_calls": 1})
    log.info(
        "screen_analyzed",
        session_id=body.session_id,
        actions=len(analysis.available_actions),
        bytes=len(image),
    )
    return AnalyzeScreenResponse(analysis=analysis)
