"""The OpenAI Realtime protocol (GA event names) at ws /v1/realtime (docs/protocol-realtime.md).

`AsyncOpenAI(base_url="http://HOST:PORT/v1", api_key=TOKEN).realtime.connect(model=PERSONA)`
works unchanged: the SDK opens /v1/realtime?model=PERSONA with `Authorization: Bearer TOKEN`.
Audio is PCM16 24 kHz both ways (input resampled to the 16 kHz our VAD and STT take). User
input (typed items, committed or VAD-detected speech) becomes our ordinary turns; the reply
streams as Realtime response events. Every client event we do not support gets a Realtime
`error`. Translation only: turn logic, limits and storage are the session core's."""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import APIRouter, WebSocket
from pydantic_core import from_json

from server.auth import AuthError, AuthUnavailable, authenticator, credentials
from server.hub.events import SessionEvents
from server.hub.expiry import end_when_expired
from server.hub.opening import SessionRefused, open_session, user_slot
from server.hub.protocol import ProtocolError
from server.hub.session import Session
from server.logging import get_logger
from server.protocols.common import persona_for

if TYPE_CHECKING:
    from server.hub.responses import ActiveResponse
    from server.pipelines.speech_out import SpokenChunk
    from server.store.base import ReminderRecord

log = get_logger(__name__)
router = APIRouter()

IN_RATE = 24_000  # Realtime's audio/pcm
STT_RATE = 16_000
FRAME_SAMPLES = 1_600  # 100 ms at 16 kHz: our largest mic frame
PCM = {"type": "audio/pcm", "rate": IN_RATE}
OPENAI_VOICES = {"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse"}
OPENAI_VOICES |= {"marin", "cedar"}
EAGERNESS = ("low", "medium", "high", "auto")  # semantic_vad, as in the Realtime API
SUPPORTED = (
    "session.update, input_audio_buffer.append/commit/clear, conversation.item.create "
    "(user input_text / input_image), response.create, response.cancel, "
    "conversation.item.truncate"
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


class RealtimeEvents(SessionEvents):
    awaits_playback = False  # Realtime clients play audio themselves (truncate tells us)

    def __init__(self, session: Session) -> None:
        self.s = session
        self._ids = itertools.count(1)
        self.client_event_id: str | None = None
        self.pending: list[str] = []  # user text items waiting for response.create
        self.resample = Resampler()
        self.partials: dict[str, str] = {}
        self.items: dict[int, str] = {}  # response number -> assistant item id
        self.last_item: str | None = None
        if session.config["output_audio"] == "mp3":  # Realtime audio is PCM16 24 kHz
            session.config["output_audio"] = "pcm16"
        if "turn_detection" not in session.record.settings:  # Realtime's default
            session.config["turn_detection"] = {"type": "server_vad"}
        self._sync_turn_detection()

    # --- helpers ----------------------------------------------------------------------
    def _eid(self) -> str:
        return f"event_{uuid.uuid4().hex[:20]}"

    async def _send(self, type_: str, **fields: Any) -> None:
        await self.s.send({"type": type_, "event_id": self._eid(), **fields})

    def _audio_on(self) -> bool:
        return self.s.config["output_audio"] != "none" and self.s.services.tts is not None

    def _sync_turn_detection(self) -> None:
        td = self.s.config["turn_detection"]
        self.voice_starts_turns = td.get("type") in ("server_vad", "semantic") and td.get(
            "create_response", True
        )

    def describe(self) -> dict[str, Any]:
        """Our session in Realtime's session shape."""
        s, cfg = self.s, self.s.config
        td = cfg["turn_detection"]
        detection = None
        if td.get("type") == "server_vad":
            detection = {
                "type": "server_vad",
                "threshold": td.get("threshold", s.settings.vad_threshold),
                "silence_duration_ms": td.get("silence_ms", s.settings.vad_silence_ms),
                "prefix_padding_ms": s.settings.vad_prefix_pad_ms,
                "create_response": td.get("create_response", True),
                "interrupt_response": True,
            }
        elif td.get("type") == "semantic":
            detection = {
                "type": "semantic_vad",
                "eagerness": td.get("eagerness") or s.settings.turn_eagerness,
                "create_response": td.get("create_response", True),
                "interrupt_response": True,
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
                    "transcription": None,
                    "noise_reduction": None,
                    "turn_detection": detection,
                },
                "output": {
                    "format": PCM,
                    "voice": cfg["voice"] or s.persona.tts_voice,
                    "speed": 1.0,
                },
            },
            "tools": [],
            "tool_choice": "auto",
        }

    # --- inbound ----------------------------------------------------------------------
    async def read(self) -> None:
        s = self.s
        while not s.closed:
            msg = await s.ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            if not s.admit():
                continue
            self.client_event_id = None
            try:
                await self.on_frame(msg)
            except ProtocolError as e:
                await self.error(e.code, e.message, e.fatal)
            except Exception:  # a bug must not end the session: report it, keep reading
                s.log.exception("realtime_event_failed")
                await self.error(
                    "server_error", "The event failed because of a server error.", False
                )

    async def on_frame(self, msg: dict[str, Any]) -> None:
        text = msg.get("text")
        if text is None:
            raise ProtocolError("invalid_request_error", "Send JSON text frames, not binary.")
        head = text[:200]
        self.s.check_text_size(
            text, "input_audio_buffer.append" in head or "conversation.item.create" in head
        )
        try:
            obj = from_json(text)
        except ValueError as e:
            raise ProtocolError("invalid_json", f"The frame is not valid JSON: {e}.") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            raise ProtocolError("invalid_request_error", "An event is a JSON object with a type.")
        eid = obj.get("event_id")
        self.client_event_id = eid if isinstance(eid, str) else None
        handler = HANDLERS.get(obj["type"])
        if handler is None:
            raise ProtocolError(
                "unsupported_event",
                f"{obj['type']!r} is not supported by this server. Supported: {SUPPORTED}.",
            )
        await handler(self, obj)

    async def on_session_update(self, obj: dict[str, Any]) -> None:
        sess = obj.get("session")
        if not isinstance(sess, dict):
            raise ProtocolError("invalid_request_error", "session.update needs a session object.")
        changes: dict[str, Any] = {}
        if "instructions" in sess:
            changes["instructions"] = _str_or_none(sess["instructions"], "instructions")
        if "model" in sess:
            pid = persona_for(self.s.services, _str_or_none(sess["model"], "model"))
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
        if sess.get("tools"):
            raise ProtocolError("unsupported_event", "Client-side tools are not supported.")
        audio = sess.get("audio") or {}
        if not isinstance(audio, dict):
            raise ProtocolError("invalid_request_error", "audio must be an object.")
        for side in ("input", "output"):
            fmt = (audio.get(side) or {}).get("format")
            if fmt is not None and (fmt.get("type"), fmt.get("rate", IN_RATE)) != (
                "audio/pcm",
                IN_RATE,
            ):
                raise ProtocolError(
                    "unsupported_format", "Only audio/pcm at 24000 Hz is supported."
                )
        out = audio.get("output") or {}
        if "voice" in out:
            voice = out["voice"]
            voice = voice.get("id") if isinstance(voice, dict) else voice
            # OpenAI's own voice names mean nothing to our TTS: the persona's voice stays
            changes["voice"] = None if voice in OPENAI_VOICES else _str_or_none(voice, "voice")
        inp = audio.get("input") or {}
        if "turn_detection" in inp:
            changes["turn_detection"] = _turn_detection(inp["turn_detection"])
        await self.s.update_settings(changes)  # sends session.updated
        self._sync_turn_detection()

    async def on_append(self, obj: dict[str, Any]) -> None:
        try:
            pcm = base64.b64decode(obj.get("audio") or "", validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError("invalid_audio", "audio is not valid base64.") from None
        if not pcm or len(pcm) % 2:
            raise ProtocolError("invalid_audio", "audio is PCM16: a non-empty, even byte count.")
        data = self.resample(pcm)
        for i in range(0, len(data), FRAME_SAMPLES * 2):
            await self.s.mic_audio(data[i : i + FRAME_SAMPLES * 2])

    async def on_commit(self, obj: dict[str, Any]) -> None:
        item = await self.s.commit_audio()
        if item is None:
            raise ProtocolError(
                "input_audio_buffer_commit_empty", "The input audio buffer holds no audio."
            )
        await self._committed(item)

    async def _committed(self, item: str) -> None:
        await self._send("input_audio_buffer.committed", previous_item_id=None, item_id=item)
        user = _user_item(item, [{"type": "input_audio", "transcript": None}], "in_progress")
        await self._send("conversation.item.added", previous_item_id=self.last_item, item=user)
        self.last_item = item

    async def on_clear(self, obj: dict[str, Any]) -> None:
        await self.s.clear_audio()
        await self._send("input_audio_buffer.cleared")

    async def on_item_create(self, obj: dict[str, Any]) -> None:
        item = obj.get("item")
        if not isinstance(item, dict) or item.get("type") != "message":
            raise ProtocolError("unsupported_event", "Only message items can be created here.")
        if item.get("role") != "user":
            raise ProtocolError("unsupported_event", "Only user messages can be created here.")
        content = item.get("content")
        if not isinstance(content, list) or not content:
            raise ProtocolError("invalid_request_error", "A message needs content parts.")
        texts: list[str] = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "input_text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind == "input_image" and isinstance(part.get("image_url"), str):
                url = part["image_url"]
                if not url.startswith("data:") or "," not in url:
                    raise ProtocolError("invalid_image", "image_url must be a data: URL.")
                await self.s.image_b64("screen", url.split(",", 1)[1], None)
            else:
                raise ProtocolError(
                    "unsupported_event", "Content parts: input_text and input_image only."
                )
        text = "\n".join(t for t in texts if t.strip())
        if text:
            self.pending.append(text)
        item_id = (
            item.get("id") if isinstance(item.get("id"), str) else f"item_{uuid.uuid4().hex[:16]}"
        )
        done = _user_item(item_id, content, "completed")
        await self._send("conversation.item.added", previous_item_id=self.last_item, item=done)
        await self._send("conversation.item.done", previous_item_id=self.last_item, item=done)
        self.last_item = item_id

    async def on_response_create(self, obj: dict[str, Any]) -> None:
        if not self.pending:
            raise ProtocolError(
                "invalid_request_error",
                "There is no user input to respond to: create a user message or commit audio.",
            )
        text, self.pending = "\n".join(self.pending), []
        await self.s.submit_text(text)

    async def on_response_cancel(self, obj: dict[str, Any]) -> None:
        if not self.s.response_active():
            raise ProtocolError(
                "response_cancel_not_active", "There is no active response to cancel."
            )
        await self.s.cancel_response()

    async def on_truncate(self, obj: dict[str, Any]) -> None:
        item_id, end = obj.get("item_id"), obj.get("audio_end_ms")
        r = self.s.response
        if r is None or self.items.get(r.number) != item_id:
            raise ProtocolError("item_not_found", f"No playing assistant item {item_id!r}.")
        if not isinstance(end, int) or end < 0:
            raise ProtocolError("invalid_request_error", "audio_end_ms is a non-negative integer.")
        self.s.audio_played(r.id, end)
        await self._send(
            "conversation.item.truncated", item_id=item_id, content_index=0, audio_end_ms=end
        )

    # --- outbound ---------------------------------------------------------------------
    async def session_created(self) -> None:
        await self._send("session.created", session=self.describe())

    async def session_updated(self) -> None:
        await self._send("session.updated", session=self.describe())

    async def session_ended(self, report_url: str) -> None:
        """No such Realtime event: the socket closes."""

    def _response(self, r: ActiveResponse, status: str, output: list[Any]) -> dict[str, Any]:
        return {
            "id": r.id,
            "object": "realtime.response",
            "status": status,
            "status_details": None,
            "output": output,
            "conversation_id": self.s.record.id,
            "output_modalities": ["audio"] if self._audio_on() else ["text"],
            "max_output_tokens": self.s.config["max_tokens"] or "inf",
            "audio": {
                "output": {
                    "format": PCM,
                    "voice": self.s.config["voice"] or self.s.persona.tts_voice,
                }
            },
            "usage": None,
            "metadata": None,
        }

    def _where(self, r: ActiveResponse) -> dict[str, Any]:
        return {"response_id": r.id, "item_id": self.items[r.number], "output_index": 0}

    async def response_created(self, r: ActiveResponse) -> None:
        item_id = f"item_{r.id}"
        self.items[r.number] = item_id
        await self._send("response.created", response=self._response(r, "in_progress", []))
        item = _assistant_item(item_id, [], "in_progress")
        await self._send("response.output_item.added", response_id=r.id, output_index=0, item=item)
        await self._send("conversation.item.added", previous_item_id=self.last_item, item=item)
        self.last_item = item_id
        part = (
            {"type": "audio", "transcript": ""}
            if self._audio_on()
            else {"type": "text", "text": ""}
        )
        await self._send(
            "response.content_part.added", **self._where(r), content_index=0, part=part
        )

    async def text_delta(self, r: ActiveResponse, delta: str) -> None:
        kind = (
            "response.output_audio_transcript.delta"
            if self._audio_on()
            else "response.output_text.delta"
        )
        await self._send(kind, **self._where(r), content_index=0, delta=delta)

    async def audio_chunk(self, r: ActiveResponse, seq: int, data: bytes) -> None:
        await self._send(
            "response.output_audio.delta",
            **self._where(r),
            content_index=0,
            delta=base64.b64encode(data).decode(),
        )

    async def audio_visemes(
        self, r: ActiveResponse, seq: int, keyframes: list[dict[str, Any]], emotion: str | None
    ) -> None:
        """Realtime has no mouth event; its clients animate from the audio themselves."""

    async def audio_done(self, r: ActiveResponse, chunks: int, duration_ms: int) -> None:
        await self._send("response.output_audio.done", **self._where(r), content_index=0)

    async def speech_sentence(self, r: ActiveResponse, index: int, chunk: SpokenChunk) -> None:
        """Realtime has no sentence event."""

    async def response_done(
        self,
        r: ActiveResponse,
        status: str,
        text: str,
        timings: dict[str, int | None],
        usage: dict[str, int],
    ) -> None:
        self._usage = usage  # sent with response.done once the reply is stored

    async def response_stored(self, r: ActiveResponse, status: str, text: str) -> None:
        where = self._where(r)
        audio = self._audio_on()
        if audio:
            await self._send(
                "response.output_audio_transcript.done", **where, content_index=0, transcript=text
            )
            part: dict[str, Any] = {"type": "audio", "transcript": text}
        else:
            await self._send("response.output_text.done", **where, content_index=0, text=text)
            part = {"type": "text", "text": text}
        await self._send("response.content_part.done", **where, content_index=0, part=part)
        kind = "output_audio" if audio else "output_text"
        content = [{"type": kind, "transcript": text} if audio else {"type": kind, "text": text}]
        state = "completed" if status == "completed" else "incomplete"
        item = _assistant_item(where["item_id"], content, state)
        await self._send("response.output_item.done", response_id=r.id, output_index=0, item=item)
        await self._send("conversation.item.done", previous_item_id=None, item=item)
        body = self._response(r, status, [item])
        if status == "cancelled":
            body["status_details"] = {"type": "cancelled", "reason": "client_cancelled"}
        elif status == "failed":
            body["status_details"] = {
                "type": "failed",
                "error": {"type": "server_error", "code": "llm_error"},
            }
        if r.emotions:  # the persona's marks, in order (Realtime has no emotion event)
            body["metadata"] = {"emotions": " ".join(r.emotions)}
        usage = getattr(self, "_usage", {}) or {}
        n_in, n_out = usage.get("input_tokens", 0), usage.get("output_tokens", 0)
        body["usage"] = {"total_tokens": n_in + n_out, "input_tokens": n_in, "output_tokens": n_out}
        await self._send("response.done", response=body)
        self.items.pop(r.number, None)

    async def speech_started(self, item_id: str | None, t_ms: int) -> None:
        await self._send("input_audio_buffer.speech_started", audio_start_ms=t_ms, item_id=item_id)

    async def speech_stopped(self, item_id: str | None, t_ms: int) -> None:
        await self._send("input_audio_buffer.speech_stopped", audio_end_ms=t_ms, item_id=item_id)
        if item_id is not None:
            await self._committed(item_id)

    async def transcript_delta(self, item_id: str | None, text: str) -> None:
        """Our partials are whole stabilized texts; Realtime deltas are increments."""
        if item_id is None:
            return
        before = self.partials.get(item_id, "")
        if not text.startswith(before) or text == before:
            return
        self.partials[item_id] = text
        await self._send(
            "conversation.item.input_audio_transcription.delta",
            item_id=item_id,
            content_index=0,
            delta=text[len(before) :],
        )

    async def transcript_done(self, item_id: str, text: str) -> None:
        self.partials.pop(item_id, None)
        await self._send(
            "conversation.item.input_audio_transcription.completed",
            item_id=item_id,
            content_index=0,
            transcript=text,
            usage={"type": "duration", "seconds": 0},
        )
        item = _user_item(item_id, [{"type": "input_audio", "transcript": text}], "completed")
        await self._send("conversation.item.done", previous_item_id=None, item=item)
        if text and not self.voice_starts_turns:
            self.pending.append(text)  # replied to on response.create

    async def analysis(self, event: dict[str, Any], *, droppable: bool = False) -> None:
        """No Realtime event for perception; the persona still perceives it."""

    async def reminder(self, r: ReminderRecord) -> bool:
        """A due reminder: an assistant message item in the conversation; True once its
        conversation.item.done was written."""
        item_id = f"item_reminder_{r.id}"
        item = _assistant_item(item_id, [{"type": "output_text", "text": r.text}], "completed")
        await self._send("conversation.item.added", previous_item_id=self.last_item, item=item)
        previous, self.last_item = self.last_item, item_id
        done = {"type": "conversation.item.done", "event_id": self._eid()}
        return await self.s.send_confirmed(done | {"previous_item_id": previous, "item": item})

    async def warning(self, code: str, message: str) -> None:
        self.s.log.info("realtime_warning_not_sent", code=code)

    async def error(
        self, code: str, message: str, fatal: bool, extra: dict[str, Any] | None = None
    ) -> None:
        kind = (
            "server_error"
            if code in ("server_error", "internal_error", "llm_error")
            else "invalid_request_error"
        )
        await self._send(
            "error",
            error={
                "type": kind,
                "code": code,
                "message": message,
                "param": None,
                "event_id": self.client_event_id,
            }
            | (extra or {}),
        )


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
    if td["type"] == "semantic_vad":  # our semantic end of turn (server/turns/)
        eagerness = td.get("eagerness", "auto")
        if eagerness not in EAGERNESS:
            raise ProtocolError(
                "invalid_request_error", "turn_detection.eagerness: low, medium, high or auto."
            )
        return {"type": "semantic", "eagerness": eagerness, "create_response": create}
    out: dict[str, Any] = {"type": "server_vad", "create_response": create}
    if isinstance(td.get("silence_duration_ms"), int) and 100 <= td["silence_duration_ms"] <= 5000:
        out["silence_ms"] = td["silence_duration_ms"]
    if isinstance(td.get("threshold"), int | float) and 0 < td["threshold"] < 1:
        out["threshold"] = float(td["threshold"])
    return out


def _user_item(item_id: str, content: list[Any], status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": "user",
        "status": status,
        "content": content,
    }


def _assistant_item(item_id: str, content: list[Any], status: str) -> dict[str, Any]:
    return _user_item(item_id, content, status) | {"role": "assistant"}


HANDLERS = {
    "session.update": RealtimeEvents.on_session_update,
    "input_audio_buffer.append": RealtimeEvents.on_append,
    "input_audio_buffer.commit": RealtimeEvents.on_commit,
    "input_audio_buffer.clear": RealtimeEvents.on_clear,
    "conversation.item.create": RealtimeEvents.on_item_create,
    "response.create": RealtimeEvents.on_response_create,
    "response.cancel": RealtimeEvents.on_response_cancel,
    "conversation.item.truncate": RealtimeEvents.on_truncate,
}


def _error_frame(code: str, message: str) -> str:
    """A Realtime error before any session exists (refused connections)."""
    error = {"type": "invalid_request_error", "code": code, "message": message}
    error |= {"param": None, "event_id": None}
    return json.dumps(
        {"type": "error", "event_id": f"event_{uuid.uuid4().hex[:20]}", "error": error}
    )


@router.websocket("/v1/realtime")
async def realtime_endpoint(
    ws: WebSocket, model: str | None = None, session_id: str | None = None
) -> None:
    """The token: `Authorization: Bearer` (the SDK's api_key), the subprotocol
    `openai-insecure-api-key.<token>` (browsers) or ?token=. Refusals are Realtime errors."""
    services = ws.app.state.services
    token, carrier = credentials(ws)
    offered = ws.scope.get("subprotocols") or []
    chosen = "realtime" if "realtime" in offered else carrier
    try:
        principal = await authenticator(ws).authenticate(token)
    except AuthError as e:
        unavailable = isinstance(e, AuthUnavailable)
        await ws.accept(subprotocol=chosen)
        await ws.send_text(
            _error_frame("auth_unavailable" if unavailable else "invalid_api_key", str(e))
        )
        await ws.close(code=1013 if unavailable else 4401)
        return
    await ws.accept(subprotocol=chosen)
    user = principal.user_id
    pid = persona_for(services, model)
    try:
        with user_slot(services, user):
            o = await open_session(services, user, pid, session_id)
            session = Session(
                ws, services, user, o.record, o.persona, o.user_turns, o.resumed, RealtimeEvents
            )
            if principal.expires_at is not None:
                leeway = services.settings.jwt_leeway_s
                session.spawn(end_when_expired(session, principal.expires_at + leeway))
            log.info("realtime_session_open", session_id=o.record.id, persona=o.persona.id)
            await session.run()
    except SessionRefused as e:
        await ws.send_text(_error_frame(e.code, e.message))
        await ws.close(code=e.close_code, reason=e.code)
