"""WebSocket protocol v1: client event models, binary frame kinds, error codes.

docs/protocol.md is the human description of this file; keep them in step."""

from __future__ import annotations

import struct
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import from_json

from analysis.face import BLENDSHAPE_NAMES
from server.initiative.policy import check_zone, parse_quiet_hours

PROTOCOL_VERSION = 1

# Binary frame kinds (first byte).
MIC_AUDIO = 0x01
SCREEN_JPEG = 0x02
CAMERA_JPEG = 0x03
FACE_LANDMARKS = 0x04
REPLY_AUDIO = 0x11
_AUDIO_HEADER = struct.Struct(">BII")
# 0x04: kind, values per point (2|3), points (468|478), t_ms (uint32); then the points'
# values and optionally MediaPipe's 52 blendshape scores in its order, all float32.
# Little-endian with an 8-byte header, so a browser can write the floats through a
# Float32Array over the same buffer. 5.8 KB instead of ~15 KB of JSON, and far cheaper to
# read (bench/perception.py).
FACE_FRAME_HEADER = struct.Struct("<BBHI")
N_BLENDSHAPES = len(BLENDSHAPE_NAMES)


def audio_frame(response_number: int, seq: int, data: bytes) -> bytes:
    """0x11 + response number (uint32 BE) + chunk seq (uint32 BE) + audio bytes."""
    return _AUDIO_HEADER.pack(REPLY_AUDIO, response_number, seq) + data


def parse_face_frame(data: bytes) -> tuple[int, np.ndarray, dict[str, float] | None]:
    """A whole 0x04 frame -> (t_ms, (points, values) float32 array, blendshapes or None).

    Checks the layout only; the face pipeline checks the values, as for face.landmarks."""
    size = len(data)
    if size < FACE_FRAME_HEADER.size:
        raise ProtocolError("invalid_frame", "A 0x04 face frame starts with an 8-byte header.")
    _, dims, n, t_ms = FACE_FRAME_HEADER.unpack_from(data)
    if dims not in (2, 3) or n not in (468, 478):
        raise ProtocolError(
            "invalid_frame",
            f"A 0x04 face frame holds 468 or 478 points of 2 or 3 values; its header says "
            f"{n} points of {dims}.",
        )
    count = n * dims
    bare = FACE_FRAME_HEADER.size + 4 * count
    if size not in (bare, bare + 4 * N_BLENDSHAPES):
        raise ProtocolError(
            "invalid_frame",
            f"A 0x04 face frame of {n} points x {dims} values is {bare} bytes, or "
            f"{bare + 4 * N_BLENDSHAPES} with the {N_BLENDSHAPES} blendshapes; got {size}.",
        )
    values = np.frombuffer(data, dtype="<f4", offset=FACE_FRAME_HEADER.size)
    blendshapes = None
    if size > bare:
        blendshapes = dict(zip(BLENDSHAPE_NAMES, values[count:].tolist(), strict=True))
    return t_ms, values[:count].reshape(n, dims), blendshapes


def face_frame(
    t_ms: int, landmarks: np.ndarray, blendshapes: dict[str, float] | None = None
) -> bytes:
    """Build a 0x04 frame, as a native client would; absent blendshape names count 0."""
    n, dims = landmarks.shape
    out = FACE_FRAME_HEADER.pack(FACE_LANDMARKS, dims, n, t_ms)
    out += np.asarray(landmarks, dtype="<f4").tobytes()
    if blendshapes is not None:
        scores = [blendshapes.get(name, 0.0) for name in BLENDSHAPE_NAMES]
        out += np.asarray(scores, dtype="<f4").tobytes()
    return out


def response_id(number: int) -> str:
    return f"resp_{number}"


# Every integer a client sends fits a JavaScript number exactly (and SQLite's 64 bits).
MAX_SAFE_INT = 2**53 - 1
SafeInt = Annotated[int, Field(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT)]
Millis = Annotated[int, Field(ge=0, le=MAX_SAFE_INT)]
# 0x04 carries t_ms as uint32; face.landmarks may use the same clock.
FaceMillis = Annotated[int, Field(ge=0, le=2**32 - 1)]


class _Event(BaseModel):
    """Strict: "10" is not 10 and "0.5" is not 0.5 (docs: wrong types are rejected);
    NaN/Infinity are rejected, so no event carries them further."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class TurnDetection(_Event):
    # omitted: the server's TURN_DETECTION (resolved by whoever applies it: with_type)
    type: Literal["semantic", "server_vad", "none"] | None = None
    eagerness: Literal["low", "medium", "high", "auto"] | None = None
    silence_ms: Annotated[int, Field(ge=100, le=5000)] | None = None
    threshold: Annotated[float, Field(ge=0.05, le=0.95)] | None = None
    preemptive: bool | None = None  # semantic only: start the reply before the turn ends
    gaze: bool | None = None  # semantic only: the camera's gaze joins in (default TURN_GAZE)
    barge_in: bool | None = None  # false: speech over a reply never cancels it

    @field_validator("eagerness", "preemptive", "gaze")
    @classmethod
    def _semantic_only(cls, v: object, info: ValidationInfo) -> object:
        """They would do nothing on server_vad or push-to-talk: an error, never ignored."""
        kind = info.data.get("type")
        if v is not None and kind not in (None, "semantic"):
            raise ValueError(f'for semantic turns only, not "{kind}"')
        return v

    def with_type(self, default: str) -> dict[str, Any]:
        """The fields given, with ``default`` (TURN_DETECTION) as the type when omitted."""
        return {"type": default} | self.model_dump(exclude_none=True)


class SessionConfig(_Event):
    persona: Annotated[str, Field(max_length=100)] | None = None
    voice: Annotated[str, Field(max_length=100)] | None = None
    instructions: Annotated[str, Field(max_length=2000)] | None = None
    instructions_mode: Literal["append", "replace"] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=8192)] | None = None
    output_audio: Literal["mp3", "pcm16", "none"] | None = None
    turn_detection: TurnDetection | None = None
    visemes: bool | None = None  # response.audio.visemes after each 0x11 chunk
    # proactive speech (server/initiative): the mode, quiet hours, the user's time zone and
    # whether camera/screen triggers are allowed
    proactive_mode: Literal["off", "quiet", "normal", "chatty"] | None = None
    proactive_quiet_hours: Annotated[str, Field(max_length=11)] | None = None
    proactive_vision: bool | None = None
    timezone: Annotated[str, Field(max_length=64)] | None = None

    @field_validator("proactive_quiet_hours")
    @classmethod
    def _quiet_hours(cls, v: str | None) -> str | None:
        parse_quiet_hours(v)
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        return None if v is None else check_zone(v)


class SessionUpdate(_Event):
    type: Literal["session.update"]
    session: SessionConfig


class InputText(_Event):
    type: Literal["input_text"]
    text: Annotated[str, Field(min_length=1)]


class InputAudioCommit(_Event):
    type: Literal["input_audio.commit"]


class InputAudioClear(_Event):
    type: Literal["input_audio.clear"]


class FaceLandmarks(_Event):
    type: Literal["face.landmarks"]
    t_ms: FaceMillis
    landmarks: Annotated[
        list[Annotated[list[float], Field(min_length=2, max_length=3)]],
        Field(min_length=468, max_length=478),
    ]
    blendshapes: (
        Annotated[dict[Annotated[str, Field(max_length=64)], float], Field(max_length=64)] | None
    ) = None


class InputImage(_Event):
    type: Literal["input_image"]
    source: Literal["screen", "camera"]
    t_ms: FaceMillis = 0
    jpeg_b64: Annotated[str, Field(min_length=4)]


class ResponseCancel(_Event):
    type: Literal["response.cancel"]


class AudioPlayed(_Event):
    type: Literal["response.audio.played"]
    response_id: Annotated[str, Field(max_length=64)]
    played_ms: Millis


class SessionPause(_Event):
    type: Literal["session.pause"]


class SessionResume(_Event):
    type: Literal["session.resume"]


class SessionEnd(_Event):
    type: Literal["session.end"]


class TaskConfirm(_Event):
    """The user's answer to a task.action_preview, clicked (a spoken one is a normal turn)."""

    type: Literal["task.confirm"]
    task_id: Annotated[str, Field(max_length=64)]
    action_id: Annotated[str, Field(max_length=64)]
    approve: bool = True


class TaskExecuted(_Event):
    """The client performed (or did not perform) the approved action; the next screen frame
    it sends is the screen after it."""

    type: Literal["task.executed"]
    task_id: Annotated[str, Field(max_length=64)]
    action_id: Annotated[str, Field(max_length=64)]
    executed: bool = True


class TaskControl(_Event):
    type: Literal["task.control"]
    task_id: Annotated[str, Field(max_length=64)]
    command: Literal["pause", "resume", "cancel", "retry"]


class ApprovalResponse(_Event):
    """The user's decision on an approval.request (server/agent/approvals.py)."""

    type: Literal["approval.response"]
    call_id: Annotated[str, Field(min_length=1, max_length=128)]
    decision: Literal["approve", "edit", "reject"]
    arguments: dict[str, Any] | None = None  # edit: the new arguments
    message: Annotated[str, Field(max_length=2000)] | None = None  # reject: why


class Ping(_Event):
    type: Literal["ping"]
    id: Annotated[str, Field(max_length=256)] | SafeInt | None = None


ClientEvent = Annotated[
    SessionUpdate
    | InputText
    | InputAudioCommit
    | InputAudioClear
    | FaceLandmarks
    | InputImage
    | ResponseCancel
    | AudioPlayed
    | SessionPause
    | SessionResume
    | SessionEnd
    | TaskConfirm
    | TaskExecuted
    | TaskControl
    | ApprovalResponse
    | Ping,
    Field(discriminator="type"),
]
CLIENT_EVENTS = TypeAdapter(ClientEvent)
KNOWN_TYPES = frozenset(
    m.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
    for m in (
        SessionUpdate,
        InputText,
        InputAudioCommit,
        InputAudioClear,
        FaceLandmarks,
        InputImage,
        ResponseCancel,
        AudioPlayed,
        SessionPause,
        SessionResume,
        SessionEnd,
        TaskConfirm,
        TaskExecuted,
        TaskControl,
        ApprovalResponse,
        Ping,
    )
)


class ProtocolError(Exception):
    """A bad client message. Becomes an `error` event; the socket stays open unless fatal."""

    def __init__(self, code: str, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.code, self.message, self.fatal = code, message, fatal


def decode_client_event(text: str) -> Any:
    """A text frame -> a client event model, or ProtocolError for every bad frame.

    JSON is parsed by pydantic-core only (never json.loads): it reports lone surrogates,
    numbers beyond 64 bits of precision and deep nesting as plain errors, where json.loads
    would raise RecursionError or ValueError (5,000-digit integers), or hand a lone
    surrogate on to code that later fails to encode it."""
    try:  # one pass in pydantic-core: 4x cheaper than parse + validate for the 15 KB
        # face.landmarks frames sent 30 times a second (bench/perception.py)
        return CLIENT_EVENTS.validate_json(text)
    except ValidationError:  # the slow path finds the precise error to report
        pass
    try:
        obj = from_json(text, allow_inf_nan=False)
    except ValueError as e:
        raise ProtocolError("invalid_json", f"The frame is not valid JSON: {e}.") from None
    return parse_client_event(obj)


def parse_client_event(obj: Any) -> Any:
    if not isinstance(obj, dict):
        raise ProtocolError("invalid_event", "Each text frame must be a JSON object.")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("invalid_event", "The event has no string field 'type'.")
    if kind not in KNOWN_TYPES:
        raise ProtocolError("unknown_type", f"Unknown event type {kind[:64]!r}.")
    try:
        return CLIENT_EVENTS.validate_python(obj)
    except ValidationError as e:
        raise ProtocolError("invalid_event", describe_validation(kind, e)) from None


def describe_validation(kind: str, e: ValidationError) -> str:
    probs = []
    for err in e.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"][1:]) or "(event)"
        probs.append(f"{loc}: {err['msg']}")
    return f"Invalid {kind!r} event: " + "; ".join(probs)


def error_event(code: str, message: str, fatal: bool = False) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, "fatal": fatal}
