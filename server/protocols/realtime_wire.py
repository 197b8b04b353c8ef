"""OpenAI Realtime's wire shapes (GA): the session, response and item objects we send, the
error frame, what a `session.update` asks for in our session's terms, and the input audio
rate. Pure translation; the dispatch is server/protocols/realtime.py."""

from __future__ import annotations

import itertools
import json
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from server.protocols.realtime_session import IN_RATE

if TYPE_CHECKING:
    from server.hub.responses import ActiveResponse
    from server.hub.session import Session

STT_RATE = 16_000
PCM = {"type": "audio/pcm", "rate": IN_RATE}
SUPPORTED = (
    "session.update, input_audio_buffer.append/commit/clear, conversation.item.create "
    "(user input_text / input_audio / input_image, system and assistant text), "
    "response.create, response.cancel, conversation.item.truncate / retrieve / delete"
)


class Resampler:
    """PCM16 24 kHz -> 16 kHz, continuous across chunks (libswresample through PyAV, with
    its anti-alias filter: plain interpolation garbles speech for Whisper)."""

    def __init__(self) -> None:
        import av

        self._av = av
        self._r = av.AudioResampler(format="s16", layout="mono", rate=STT_RATE)

    def __call__(self, pcm: bytes) -> bytes:
        arr = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
        frame = self._av.AudioFrame.from_ndarray(arr, format="s16", layout="mono")
        frame.sample_rate = IN_RATE
        return b"".join(f.to_ndarray().astype("<i2").tobytes() for f in self._r.resample(frame))


# A server event's id: this process's random prefix and a counter (unique, as uuid4 was, but
# without a getrandom call per text delta).
_EVENT_PREFIX = uuid.uuid4().hex[:8]
_event_numbers = itertools.count()


def event_id() -> str:
    return f"event_{_EVENT_PREFIX}{next(_event_numbers):012x}"


def session_shape(s: Session, tools: list[dict[str, Any]], tool_choice: str) -> dict[str, Any]:
    """Our session in Realtime's session shape (``tools``: the client's functions)."""
    cfg = s.config
    td = cfg["turn_detection"]
    detection = None
    if td.get("type") == "server_vad":
        detection = {
            "type": "server_vad",
            "threshold": td.get("threshold", s.settings.vad_threshold),
            "silence_duration_ms": td.get("silence_ms", s.settings.vad_silence_ms),
            "prefix_padding_ms": s.settings.vad_prefix_pad_ms,
            "create_response": td.get("create_response", True),
            "interrupt_response": td.get("barge_in", True),
            "idle_timeout_ms": None,
        }
    elif td.get("type") == "semantic":
        detection = {
            "type": "semantic_vad",
            "eagerness": td.get("eagerness") or s.settings.turn_eagerness,
            "create_response": td.get("create_response", True),
            "interrupt_response": td.get("barge_in", True),
        }
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": s.record.id,
        "model": s.persona.id,
        "output_modalities": ["audio"] if cfg["output_audio"] != "none" else ["text"],
        "instructions": cfg["instructions"] or "",
        "max_output_tokens": cfg["max_tokens"] or "inf",
        "audio": {
            "input": {
                "format": PCM,
                # always on: what our Whisper heard comes as transcription events
                "transcription": {"model": "faster-whisper", "language": s.stt_language()},
                "noise_reduction": None,
                "turn_detection": detection,
            },
            "output": {"format": PCM, "voice": cfg["voice"] or s.persona.tts_voice, "speed": 1.0},
        },
        "tools": tools,
        "tool_choice": tool_choice,
    }


def response_shape(
    s: Session, r: ActiveResponse, status: str, output: list[Any], audio: bool
) -> dict[str, Any]:
    return {
        "id": r.id,
        "object": "realtime.response",
        "status": status,
        "status_details": None,
        "output": output,
        "conversation_id": s.record.id,
        "output_modalities": ["audio"] if audio else ["text"],
        "max_output_tokens": s.config["max_tokens"] or "inf",
        "audio": {"output": {"format": PCM, "voice": s.config["voice"] or s.persona.tts_voice}},
        "usage": None,
        # a proactive turn (the persona spoke first) says what made it (metadata is
        # Realtime's free string map)
        "metadata": {"trigger": r.trigger} if r.trigger else None,
    }


def finished_response(
    s: Session,
    r: ActiveResponse,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, int],
    audio: bool,
) -> dict[str, Any]:
    """response.done's response: status details, usage and the persona's emotions."""
    body = response_shape(s, r, status, output, audio)
    if status == "cancelled":
        body["status_details"] = {"type": "cancelled", "reason": "client_cancelled"}
    elif status == "failed":
        body["status_details"] = {
            "type": "failed",
            "error": {"type": "server_error", "code": "llm_error"},
        }
    if r.emotions:  # the persona's marks, in order (Realtime has no emotion event)
        body["metadata"] = (body["metadata"] or {}) | {"emotions": " ".join(r.emotions)}
    n_in, n_out = usage.get("input_tokens", 0), usage.get("output_tokens", 0)
    body["usage"] = {"total_tokens": n_in + n_out, "input_tokens": n_in, "output_tokens": n_out}
    return body


def user_item(item_id: str, content: list[Any], status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": "user",
        "status": status,
        "content": content,
    }


def assistant_item(item_id: str, content: list[Any], status: str) -> dict[str, Any]:
    return user_item(item_id, content, status) | {"role": "assistant"}


def error_body(code: str, message: str, event: str | None) -> dict[str, Any]:
    kind = (
        "server_error"
        if code in ("server_error", "internal_error", "llm_error", "database_unavailable")
        else "invalid_request_error"
    )
    return {"type": kind, "code": code, "message": message, "param": None, "event_id": event}


def error_frame(code: str, message: str) -> str:
    """A Realtime error before any session exists (refused connections)."""
    return json.dumps(
        {"type": "error", "event_id": event_id(), "error": error_body(code, message, None)}
    )


def chat_schema(tool: dict[str, Any]) -> dict[str, Any]:
    """A Realtime function as a chat-completions tool schema (what our model takes)."""
    fn = {
        "name": tool["name"],
        "description": tool["description"],
        "parameters": tool["parameters"],
    }
    return {"type": "function", "function": fn}


def function_call_item(
    item_id: str, name: str, call_id: str, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "function_call",
        "status": status,
        "name": name,
        "call_id": call_id,
        "arguments": arguments,
    }
