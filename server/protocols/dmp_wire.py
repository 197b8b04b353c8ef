"""DesktopMatePlus v1's wire shapes: their close and error codes, the frame envelope, the
`chat_message` and `hitl_response` schemas field for field, and image data URLs."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from server.hub.protocol import ProtocolError

# Their close and error codes (docs/websocket/WEBSOCKET_API_GUIDE.md, appendix C).
PING_TIMEOUT = 4000
AUTH_FAILED = 4001
TURN_RUNNING = 4002
INTERRUPTED = 4003
NOTHING_TO_INTERRUPT = 4004


def message(type_: str, **fields: Any) -> dict[str, Any]:
    """Their pydantic messages as sent: type, then id and timestamp (null), then fields."""
    return {"type": type_, "id": None, "timestamp": None, **fields}


def error(text: str, code: int | None = None) -> dict[str, Any]:
    return message("error", error=text, code=code)


class EditedAction(BaseModel):
    name: str
    args: dict[str, Any]


class HitlDecision(BaseModel):
    """One decision of their hitl_response (approve | edit with edited_action | reject)."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["approve", "edit", "reject"]
    edited_action: EditedAction | None = None
    message: Annotated[str, Field(max_length=2000)] | None = None

    @model_validator(mode="after")
    def _edit_has_action(self) -> HitlDecision:
        if self.type == "edit" and self.edited_action is None:
            raise ValueError("an edit decision needs edited_action")
        return self


class HitlResponse(BaseModel):
    """Their hitl_response: one decision per action_request, oldest first."""

    model_config = ConfigDict(extra="ignore")

    decisions: Annotated[list[HitlDecision], Field(min_length=1, max_length=20)]


class ImageUrl(BaseModel):
    url: str
    detail: str = "auto"


class ImageContent(BaseModel):
    type: str = "image_url"
    image_url: ImageUrl


class ChatMessage(BaseModel):
    """Their chat_message, field for field (types as their schema, unknown keys ignored)."""

    model_config = ConfigDict(extra="ignore")

    content: str
    agent_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    persona_id: str | None = None
    images: list[ImageContent] | None = None
    limit: int | None = 10
    tts_enabled: bool = True
    reference_id: str | None = None
    session_id: str | None = None
    metadata: dict[str, Any] | None = None


def decode_image(item: ImageContent) -> bytes:
    """A data: URL's bytes (we never fetch http URLs on a client's behalf)."""
    url = item.image_url.url
    if not url.startswith("data:") or "," not in url:
        raise ProtocolError("invalid_image", "Images must be data: URLs (base64).")
    try:
        return base64.b64decode(url.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("invalid_image", "The image data URL is not valid base64.") from None
