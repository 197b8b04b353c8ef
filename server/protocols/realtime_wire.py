"""OpenAI Realtime's wire shapes (GA): the session, response and item objects we send, the
error frame, what a `session.update` asks for in our session's terms, and the input audio
rate. Pure translation; the dispatch is server/protocols/realtime.py."""

from __future__ import annotations

import json
import re
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from server.hub.protocol import ProtocolError
from server.protocols.common import persona_for

if TYPE_CHECKING:
    from server.hub.responses import ActiveResponse
    from server.hub.session import Session
    from server.services import Services

IN_RATE = 24_000  # Realtime's audio/pcm
STT_RATE = 16_000
PCM = {"type": "audio/pcm", "rate": IN_RATE}
OPENAI_VOICES = {"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse"}
OPENAI_VOICES |= {"marin", "cedar"}
EAGERNESS = ("low", "medium", "high", "auto")  # semantic_vad, as in the Realtime API
SUPPORTED = (
    "session.update, input_audio_buffer.append/commit/clear, conversation.item.create "
    "(user input_text / input_image), response.create, response.cancel, "
    "conversation.item.truncate"
)
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_TOOLS = 32


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


def event_id() -> str:
    return f"event_{uuid.uuid4().hex[:20]}"


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
        if code in ("server_error", "internal_error", "llm_error")
        else "invalid_request_error"
    )
    return {"type": kind, "code": code, "message": message, "param": None, "event_id": event}


def error_frame(code: str, message: str) -> str:
    """A Realtime error before any session exists (refused connections)."""
    return json.dumps(
        {"type": "error", "event_id": event_id(), "error": error_body(code, message, None)}
    )


# --- session.update in our session's terms ---------------------------------------------------
def session_changes(services: Services, sess: Any) -> dict[str, Any]:
    """The settings a `session.update` `session` object changes (ProtocolError when it asks
    for something we do not support)."""
    if not isinstance(sess, dict):
        raise ProtocolError("invalid_request_error", "session.update needs a session object.")
    changes: dict[str, Any] = {}
    if "instructions" in sess:
        changes["instructions"] = _str_or_none(sess["instructions"], "instructions")
    if "model" in sess:
        pid = persona_for(services, _str_or_none(sess["model"], "model"))
        if pid is None:
            raise ProtocolError("unknown_persona", f"No persona {sess['model']!r}.")
        changes["persona"] = pid
    if "output_modalities" in sess:
        mods = sess["output_modalities"]
        if mods not in (["audio"], ["text"]):
            raise ProtocolError(
                "invalid_request_error", 'output_modalities is ["audio"] or ["text"].'
            )
        changes["output_audio"] = "pcm16" if mods == ["audio"] else "none"
    if "max_output_tokens" in sess:
        n = sess["max_output_tokens"]
        if n != "inf" and not (isinstance(n, int) and 1 <= n <= 4096):
            raise ProtocolError("invalid_request_error", "max_output_tokens: 1-4096 or inf.")
        changes["max_tokens"] = None if n == "inf" else n
    audio = sess.get("audio") or {}
    if not isinstance(audio, dict):
        raise ProtocolError("invalid_request_error", "audio must be an object.")
    for side in ("input", "output"):
        fmt = (audio.get(side) or {}).get("format")
        if fmt is not None and (fmt.get("type"), fmt.get("rate", IN_RATE)) != (
            "audio/pcm",
            IN_RATE,
        ):
            raise ProtocolError("unsupported_format", "Only audio/pcm at 24000 Hz is supported.")
    out = audio.get("output") or {}
    if "voice" in out:
        voice = out["voice"]
        voice = voice.get("id") if isinstance(voice, dict) else voice
        # OpenAI's own voice names mean nothing to our TTS: the persona's voice stays
        changes["voice"] = None if voice in OPENAI_VOICES else _str_or_none(voice, "voice")
    inp = audio.get("input") or {}
    if "turn_detection" in inp:
        changes["turn_detection"] = _turn_detection(inp["turn_detection"])
    elif "turn_detection" in sess:  # the beta API's place for it
        changes["turn_detection"] = _turn_detection(sess["turn_detection"])
    return changes


def client_tools(sess: dict[str, Any], names_taken: set[str]) -> list[dict[str, Any]] | None:
    """The functions a `session.update` gives (Realtime's {type: function, name,
    description, parameters}), checked; None when it does not set them."""
    if "tools" not in sess:
        return None
    tools = sess["tools"]
    if not isinstance(tools, list) or len(tools) > MAX_TOOLS:
        raise ProtocolError("invalid_request_error", f"tools is a list of up to {MAX_TOOLS}.")
    out: list[dict[str, Any]] = []
    for t in tools:
        if not isinstance(t, dict) or t.get("type", "function") != "function":
            raise ProtocolError("unsupported_event", "Only function tools are supported.")
        name = t.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise ProtocolError(
                "invalid_request_error", "A function name is 1-64 of a-z A-Z 0-9 _ -."
            )
        if name in names_taken or any(o["name"] == name for o in out):
            raise ProtocolError(
                "invalid_request_error",
                f"The function name {name!r} is taken (the persona's own tools).",
            )
        params = t.get("parameters") or {"type": "object", "properties": {}}
        desc = t.get("description") or ""
        if not isinstance(params, dict) or not isinstance(desc, str):
            raise ProtocolError(
                "invalid_request_error", "parameters is an object, description a string."
            )
        out.append({"type": "function", "name": name, "description": desc, "parameters": params})
    return out


def tool_choice(sess: dict[str, Any]) -> str | None:
    """`auto` (the model decides) or `none`; forcing a call is not supported."""
    choice = sess.get("tool_choice")
    if choice is None or choice in ("auto", "none"):
        return choice
    raise ProtocolError(
        "unsupported_event", 'tool_choice: "auto" or "none" (forcing a call is not supported).'
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


def _str_or_none(v: Any, name: str) -> str | None:
    if v is not None and not isinstance(v, str):
        raise ProtocolError("invalid_request_error", f"{name} must be a string.")
    return v or None


def _turn_detection(td: Any) -> dict[str, Any]:
    if td is None:
        return {"type": "none", "create_response": False}
    if not isinstance(td, dict) or td.get("type") not in ("server_vad", "semantic_vad"):
        raise ProtocolError(
            "unsupported_event", "turn_detection: server_vad, semantic_vad or null."
        )
    create = td.get("create_response", True) is not False
    # interrupt_response false: speech over a reply does not cancel it (our barge_in)
    interrupt = {"barge_in": False} if td.get("interrupt_response") is False else {}
    if td["type"] == "semantic_vad":  # our semantic end of turn (server/turns/)
        eagerness = td.get("eagerness") or "auto"
        if eagerness not in EAGERNESS:
            raise ProtocolError(
                "invalid_request_error", "turn_detection.eagerness: low, medium, high or auto."
            )
        return {"type": "semantic", "eagerness": eagerness, "create_response": create} | interrupt
    out: dict[str, Any] = {"type": "server_vad", "create_response": create} | interrupt
    if isinstance(td.get("silence_duration_ms"), int) and 100 <= td["silence_duration_ms"] <= 5000:
        out["silence_ms"] = td["silence_duration_ms"]
    if isinstance(td.get("threshold"), int | float) and 0 < td["threshold"] < 1:
        out["threshold"] = float(td["threshold"])
    return out
