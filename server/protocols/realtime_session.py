"""What an OpenAI Realtime `session.update` asks for, in our session's terms: the GA shape
(`session.audio.input.turn_detection`, ...) and the beta one (`session.turn_detection`,
`input_audio_format`, `modalities`, `voice`). Every field we read is checked for its type and
range, and a bad one is a `ParamError` naming it as OpenAI does
(`session.audio.input.turn_detection.threshold`), never a silent default."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from server.hub.protocol import ProtocolError
from server.protocols.common import persona_for

if TYPE_CHECKING:
    from server.services import Services

IN_RATE = 24_000  # Realtime's audio/pcm
OPENAI_VOICES = {"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse"}
OPENAI_VOICES |= {"marin", "cedar"}
EAGERNESS = ("low", "medium", "high", "auto")  # semantic_vad, as in the Realtime API
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_TOOLS = 32
# Our VAD's limits (server/hub/protocol.py TurnDetection: the same for /v1/ws)
THRESHOLD = (0.05, 0.95)
SILENCE_MS = (100, 5000)
# The fields each turn detection has in the Realtime API (others are unknown parameters)
TD_FIELDS = {
    "server_vad": {
        "type",
        "threshold",
        "prefix_padding_ms",
        "silence_duration_ms",
        "create_response",
        "interrupt_response",
        "idle_timeout_ms",
    },
    "semantic_vad": {"type", "eagerness", "create_response", "interrupt_response"},
}
_UNSUP = "unsupported_event"
BETA_FORMATS = {"pcm16": True, "g711_ulaw": False, "g711_alaw": False}  # supported?


class ParamError(ProtocolError):
    """A bad field of the `session` object; ``param`` names it from the session down
    (``audio.input`` -> the error event's `param` `session.audio.input`)."""

    def __init__(
        self, field: str, message: str, code: str = "invalid_request_error", root: str = "session"
    ) -> None:
        self.param, self.field, self.detail = f"{root}.{field}", field, message
        super().__init__(code, f"{self.param}: {message}")


def session_changes(services: Services, sess: Any) -> dict[str, Any]:
    """The settings a `session.update` `session` object changes (ProtocolError when it asks
    for something we do not support, ParamError for a bad field)."""
    if not isinstance(sess, dict):
        raise ProtocolError("invalid_request_error", "session.update needs a session object.")
    kind = sess.get("type", "realtime")  # the beta API had no type
    if kind == "transcription":
        raise ParamError("type", "transcription sessions are not supported.", _UNSUP)
    if kind != "realtime":
        raise ParamError("type", 'expected "realtime".')
    changes = _shared_changes(sess)
    if "model" in sess:
        pid = persona_for(services, _str_or_none(sess["model"], "model"))
        if pid is None:
            raise ProtocolError("unknown_persona", f"No persona {sess['model']!r}.")
        changes["persona"] = pid
    audio = _obj(sess.get("audio"), "audio")
    inp = _obj(audio.get("input"), "audio.input")
    out = _obj(audio.get("output"), "audio.output")
    for side, part in (("input", inp), ("output", out)):
        _check_format(part.get("format"), f"audio.{side}.format")
        _check_beta_format(sess.get(f"{side}_audio_format"), f"{side}_audio_format")
    voice: Any = None
    if "voice" in out:
        voice, param = out["voice"], "audio.output.voice"
    elif "voice" in sess:  # the beta API's place for it
        voice, param = sess["voice"], "voice"
    if "voice" in out or "voice" in sess:
        voice = _str_or_none(voice.get("id") if isinstance(voice, dict) else voice, param)
        # OpenAI's own voice names mean nothing to our TTS: the persona's voice stays
        changes["voice"] = None if voice in OPENAI_VOICES else voice
    if "turn_detection" in inp:
        td = turn_detection(inp["turn_detection"], "audio.input.turn_detection")
        changes["turn_detection"] = td
    elif "turn_detection" in sess:  # the beta API's place for it
        changes["turn_detection"] = turn_detection(sess["turn_detection"], "turn_detection")
    return changes


def response_changes(resp: Any) -> dict[str, Any]:
    """A `response.create` `response` object's settings for that one response, in our
    session's terms (instructions, output modalities, max_output_tokens). What one response
    cannot have here (out of band, its own input) is an error naming the field; the rest
    (voice, tools, metadata, ...) is accepted and the session's is used."""
    if resp is None:
        return {}
    if not isinstance(resp, dict):
        raise ProtocolError("invalid_request_error", "response: an object (or absent).")
    try:
        if resp.get("conversation", "auto") != "auto":
            raise ParamError(
                "conversation", '"auto" only: out-of-band responses are not supported.', _UNSUP
            )
        if resp.get("input") is not None:
            raise ParamError("input", "not supported: a response answers the conversation.", _UNSUP)
        # null is "not given" here: the session's value holds for this response
        changes = _shared_changes({k: v for k, v in resp.items() if v is not None})
    except ParamError as e:
        raise ParamError(e.field, e.detail, e.code, root="response") from None
    return changes


def _shared_changes(obj: dict[str, Any]) -> dict[str, Any]:
    """The fields a session and a response both have (GA and beta names)."""
    changes: dict[str, Any] = {}
    if "instructions" in obj:
        changes["instructions"] = _str_or_none(obj["instructions"], "instructions")
    if "output_modalities" in obj:
        changes["output_audio"] = _modalities(obj["output_modalities"], "output_modalities")
    elif "modalities" in obj:  # beta
        changes["output_audio"] = _modalities(obj["modalities"], "modalities", beta=True)
    if "max_output_tokens" in obj:
        changes["max_tokens"] = _max_tokens(obj["max_output_tokens"])
    elif "max_response_output_tokens" in obj:  # beta
        changes["max_tokens"] = _max_tokens(obj["max_response_output_tokens"])
    return changes


def _max_tokens(n: Any) -> int | None:
    if n != "inf" and not (_is_int(n) and 1 <= n <= 4096):
        raise ParamError("max_output_tokens", "1-4096 or inf.")
    return None if n == "inf" else n


def turn_detection(td: Any, where: str) -> dict[str, Any]:
    """Realtime's turn_detection as ours (`server_vad` / `semantic` / `none`)."""
    if td is None:
        return {"type": "none", "create_response": False}
    if not isinstance(td, dict) or not isinstance(td.get("type"), str):
        raise ParamError(where, "an object with a type (server_vad, semantic_vad), or null.")
    if td["type"] not in TD_FIELDS:
        raise ParamError(f"{where}.type", "server_vad, semantic_vad or null.", _UNSUP)
    kind = td["type"]
    for key in td:
        if key not in TD_FIELDS[kind]:
            raise ParamError(f"{where}.{key}", f"unknown parameter for {kind}.")
    create = _bool(td.get("create_response"), f"{where}.create_response", True)
    out: dict[str, Any] = {"create_response": create}
    # interrupt_response false: speech over a reply does not cancel it (our barge_in)
    if not _bool(td.get("interrupt_response"), f"{where}.interrupt_response", True):
        out["barge_in"] = False
    if kind == "semantic_vad":  # our semantic end of turn (server/turns/)
        eagerness = td.get("eagerness")
        if eagerness is None:  # null is the default; "", false or 0 are no eagerness
            eagerness = "auto"
        if not isinstance(eagerness, str) or eagerness not in EAGERNESS:
            raise ParamError(f"{where}.eagerness", "low, medium, high or auto.")
        return {"type": "semantic", "eagerness": eagerness} | out
    out = {"type": "server_vad"} | out
    silence = td.get("silence_duration_ms")
    if silence is not None:
        lo, hi = SILENCE_MS
        if not (_is_int(silence) and lo <= silence <= hi):
            raise ParamError(f"{where}.silence_duration_ms", f"an integer from {lo} to {hi}.")
        out["silence_ms"] = silence
    threshold = td.get("threshold")
    if threshold is not None:
        lo, hi = THRESHOLD
        ok = isinstance(threshold, int | float) and not isinstance(threshold, bool)
        if not (ok and lo <= threshold <= hi):
            raise ParamError(f"{where}.threshold", f"a number from {lo} to {hi} here.")
        out["threshold"] = float(threshold)
    # accepted, not ours to change (docs/protocol-realtime.md "Turn detection")
    for key in ("prefix_padding_ms", "idle_timeout_ms"):
        v = td.get(key)
        if v is not None and not (_is_int(v) and v >= 0):
            raise ParamError(f"{where}.{key}", "a whole number of milliseconds.")
    return out


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


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _bool(v: Any, param: str, default: bool) -> bool:
    if v is None:
        return default
    if not isinstance(v, bool):
        raise ParamError(param, "true or false.")
    return v


def _obj(v: Any, param: str) -> dict[str, Any]:
    """An optional object field: {} when absent or null."""
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ParamError(param, "an object.")
    return v


def _str_or_none(v: Any, param: str) -> str | None:
    if v is not None and not isinstance(v, str):
        raise ParamError(param, "a string.")
    return v or None


def _modalities(mods: Any, key: str, *, beta: bool = False) -> str:
    """output_audio for GA's ["audio"] / ["text"], or the beta API's ["audio", "text"]."""
    shapes = [["audio"], ["text"]] + ([["audio", "text"], ["text", "audio"]] if beta else [])
    if mods not in shapes:
        raise ParamError(f"{key}", " or ".join(json.dumps(m) for m in shapes) + ".")
    return "pcm16" if "audio" in mods else "none"


def _check_format(fmt: Any, param: str) -> None:
    """GA: {type: "audio/pcm", rate: 24000} is what we take."""
    if fmt is None:
        return
    if not isinstance(fmt, dict):
        raise ParamError(param, 'an object such as {"type": "audio/pcm", "rate": 24000}.')
    if (fmt.get("type"), fmt.get("rate", IN_RATE)) != ("audio/pcm", IN_RATE):
        raise ParamError(param, "only audio/pcm at 24000 Hz is supported.", "unsupported_format")


def _check_beta_format(fmt: Any, param: str) -> None:
    """Beta: "pcm16" (24 kHz) is what we take; G.711 is not supported."""
    if fmt is None:
        return
    if not isinstance(fmt, str) or fmt not in BETA_FORMATS:
        raise ParamError(param, "pcm16, g711_ulaw or g711_alaw.")
    if not BETA_FORMATS[fmt]:
        raise ParamError(param, "only pcm16 (24000 Hz) is supported.", "unsupported_format")
