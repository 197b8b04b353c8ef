"""The OpenAI Realtime protocol (GA event names) at ws /v1/realtime (docs/protocol-realtime.md).

`AsyncOpenAI(base_url="http://HOST:PORT/v1", api_key=TOKEN).realtime.connect(model=PERSONA)`
works unchanged: the SDK opens /v1/realtime?model=PERSONA with `Authorization: Bearer TOKEN`.
Audio is PCM16 24 kHz both ways (input resampled to the 16 kHz our VAD and STT take). User
input (typed items, committed or VAD-detected speech) becomes our ordinary turns; the reply
streams as Realtime response events. Every client event we do not support gets a Realtime
`error`. Translation only: turn logic, limits and storage are the session core's."""

from __future__ import annotations

import base64
import itertools
import uuid
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, WebSocket
from pydantic_core import from_json

from server.auth import AuthError, AuthUnavailable, authenticator, credentials
from server.hub.events import SessionEvents, send_reminder
from server.hub.expiry import end_when_expired
from server.hub.opening import SessionRefused, open_session, user_slot
from server.hub.protocol import ProtocolError
from server.hub.session import Session
from server.logging import get_logger
from server.protocols.common import persona_for
from server.protocols.realtime_input import HANDLERS, RealtimeInput
from server.protocols.realtime_session import ParamError
from server.protocols.realtime_wire import (
    SUPPORTED,
    Resampler,
    assistant_item,
    error_body,
    error_frame,
    event_id,
    finished_response,
    function_call_item,
    response_shape,
    session_shape,
    user_item,
)

if TYPE_CHECKING:
    from server.agent.graph import ClientCall
    from server.hub.responses import ActiveResponse
    from server.pipelines.speech_out import SpokenChunk
    from server.store.base import ReminderRecord

log = get_logger(__name__)
router = APIRouter()


KNOWN_ITEMS = 200  # conversation.item.retrieve answers for the latest this many items


class RealtimeEvents(RealtimeInput, SessionEvents):
    awaits_playback = False  # Realtime clients play audio themselves (truncate tells us)

    def __init__(self, session: Session) -> None:
        self.s = session
        self._ids = itertools.count(1)
        self.client_event_id: str | None = None
        self.pending: list[str] = []  # user text items waiting for response.create
        self.resample = Resampler()
        self.half_sample = b""
        self.partials: dict[str, str] = {}
        self.items: dict[int, str] = {}  # response number -> assistant item id
        self.done_items: dict[int, str] = {}  # the same, for the last finished response
        self.last_item: str | None = None
        self.before: dict[str, str | None] = {}  # item id -> the item before it (for .done)
        # a transcript's partial waits until its item was committed (the client knows it)
        self.committed: set[str] = set()
        self.early: dict[str, str] = {}
        # function calling: the client's functions, the calls waiting for their output,
        # the outputs waiting for response.create, each response's function_call items
        self.tools: list[dict[str, Any]] = []
        self.tool_choice = "auto"
        self.open_calls: dict[str, ClientCall] = {}
        self.answers: list[tuple[ClientCall, str]] = []
        self.one_response: dict[str, Any] = {}
        self.known: dict[str, dict[str, Any]] = {}  # the latest items, as item.done said
        self.stored: dict[str, str] = {}  # item id -> stored message id (item.delete)
        self.calls: dict[int, list[dict[str, Any]]] = {}
        if session.config["output_audio"] == "mp3":  # Realtime audio is PCM16 24 kHz
            session.config["output_audio"] = "pcm16"
        if "turn_detection" not in session.record.settings:  # Realtime's default
            session.config["turn_detection"] = {"type": "server_vad"}
        self._sync_turn_detection()

    # --- helpers ----------------------------------------------------------------------
    async def _send(self, type_: str, **fields: Any) -> None:
        await self.s.send({"type": type_, "event_id": event_id(), **fields})
        if type_ == "conversation.item.done":  # for conversation.item.retrieve
            self.known[fields["item"]["id"]] = fields["item"]
            while len(self.known) > KNOWN_ITEMS:
                self.known.pop(next(iter(self.known)))

    def _audio_on(self) -> bool:
        return self.s.config["output_audio"] != "none" and self.s.services.tts is not None

    def _link(self, item_id: str) -> str | None:
        """The item is now the conversation's last: the one before it, which its
        conversation.item.added (and .done, through ``before``) name."""
        previous, self.last_item = self.last_item, item_id
        self.before[item_id] = previous
        return previous

    def _sync_turn_detection(self) -> None:
        td = self.s.config["turn_detection"]
        self.voice_starts_turns = td.get("type") in ("server_vad", "semantic") and td.get(
            "create_response", True
        )

    # --- inbound ----------------------------------------------------------------------
    async def read(self) -> None:
        s = self.s
        async for msg in s.frames():
            self.client_event_id = None
            try:
                await self.on_frame(msg)
            except ProtocolError as e:
                param = {"param": e.param} if isinstance(e, ParamError) else None
                await self.error(e.code, e.message, e.fatal, param)
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

    # --- outbound ---------------------------------------------------------------------
    async def session_created(self) -> None:
        await self._send(
            "session.created", session=session_shape(self.s, self.tools, self.tool_choice)
        )

    async def session_updated(self) -> None:
        await self._send(
            "session.updated", session=session_shape(self.s, self.tools, self.tool_choice)
        )

    async def session_ended(self, report_url: str) -> None:
        """No such Realtime event: the socket closes."""

    def _where(self, r: ActiveResponse) -> dict[str, Any]:
        return {"response_id": r.id, "item_id": self.items[r.number], "output_index": 0}

    async def response_created(self, r: ActiveResponse) -> None:
        item_id = f"item_{r.id}"
        self.items[r.number] = item_id
        await self._send(
            "response.created",
            response=response_shape(self.s, r, "in_progress", [], self._audio_on()),
        )
        item = assistant_item(item_id, [], "in_progress")
        await self._send("response.output_item.added", response_id=r.id, output_index=0, item=item)
        await self._send("conversation.item.added", previous_item_id=self._link(item_id), item=item)
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
        where = self._where(r)
        event = {"type": kind, "event_id": event_id(), **where, "content_index": 0, "delta": delta}
        await self.s.send_delta((r.id, kind), event, "delta")

    async def client_call(self, r: ActiveResponse, call: ClientCall) -> None:
        """A function_call output item after the message (output_index 1, 2, ...), its
        arguments in one delta; the client runs it and answers with function_call_output."""
        done = self.calls.setdefault(r.number, [])
        where = {"response_id": r.id, "output_index": 1 + len(done)}
        item_id = f"item_{uuid.uuid4().hex[:16]}"
        item = function_call_item(item_id, call.name, call.call_id, "", "in_progress")
        await self._send("response.output_item.added", **where, item=item)
        previous = self._link(item_id)
        await self._send("conversation.item.added", previous_item_id=previous, item=item)
        ids = {"item_id": item_id, "call_id": call.call_id}
        await self._send(
            "response.function_call_arguments.delta", **where, **ids, delta=call.arguments
        )
        await self._send(
            "response.function_call_arguments.done",
            **where,
            **ids,
            name=call.name,
            arguments=call.arguments,
        )
        item = item | {"status": "completed", "arguments": call.arguments}
        await self._send("response.output_item.done", **where, item=item)
        await self._send(
            "conversation.item.done", previous_item_id=self.before.pop(item_id, None), item=item
        )
        done.append(item)
        self.open_calls[call.call_id] = call

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
        item = assistant_item(where["item_id"], content, state)
        await self._send("response.output_item.done", response_id=r.id, output_index=0, item=item)
        previous = self.before.pop(item["id"], None)
        await self._send("conversation.item.done", previous_item_id=previous, item=item)
        usage = getattr(self, "_usage", {}) or {}
        output = [item, *self.calls.pop(r.number, [])]
        body = finished_response(self.s, r, status, output, usage, audio)
        await self._send("response.done", response=body)
        self.end_one_response()
        if text:  # stored: the client may delete it (conversation.item.delete)
            self.stored[where["item_id"]] = r.reply_id
        self.done_items = {r.number: where["item_id"]}
        self.items.pop(r.number, None)

    async def speech_started(self, item_id: str | None, t_ms: int) -> None:
        await self._send("input_audio_buffer.speech_started", audio_start_ms=t_ms, item_id=item_id)

    async def speech_stopped(self, item_id: str | None, t_ms: int) -> None:
        await self._send("input_audio_buffer.speech_stopped", audio_end_ms=t_ms, item_id=item_id)
        if item_id is not None:
            await self._committed(item_id)

    async def transcript_delta(self, item_id: str | None, text: str) -> None:
        """Our partials are whole stabilized texts; Realtime deltas are increments, for an
        item the client was told of (committed): earlier partials wait for that."""
        if item_id is None:
            return
        if item_id not in self.committed:
            self.early = {item_id: text}  # only the utterance in progress
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

    async def flush_partial(self, item_id: str) -> None:
        """The item was committed: the partial heard so far goes out."""
        self.committed.add(item_id)
        text = self.early.pop(item_id, None)
        if text is not None:
            await self.transcript_delta(item_id, text)

    async def transcript_done(self, item_id: str, text: str) -> None:
        self.partials.pop(item_id, None)
        self.committed.discard(item_id)
        await self._send(
            "conversation.item.input_audio_transcription.completed",
            item_id=item_id,
            content_index=0,
            transcript=text,
            usage={"type": "duration", "seconds": 0},
        )
        item = user_item(item_id, [{"type": "input_audio", "transcript": text}], "completed")
        previous = self.before.pop(item_id, None)
        await self._send("conversation.item.done", previous_item_id=previous, item=item)
        if text and not self.voice_starts_turns:
            self.pending.append(text)  # replied to on response.create

    async def analysis(self, event: dict[str, Any], *, droppable: bool = False) -> None:
        """No Realtime event for perception; the persona still perceives it."""

    async def reminder(self, r: ReminderRecord) -> bool:
        """A due reminder: an assistant message item in the conversation, between replies;
        True once its conversation.item.done was written."""
        item_id = f"item_reminder_{r.id}"
        item = assistant_item(item_id, [{"type": "output_text", "text": r.text}], "completed")

        def frames() -> list[dict[str, Any]]:
            previous, self.last_item = self.last_item, item_id
            return [
                {"type": t, "event_id": event_id(), "previous_item_id": previous, "item": item}
                for t in ("conversation.item.added", "conversation.item.done")
            ]

        return await send_reminder(self.s, frames, between_replies=True)

    async def warning(self, code: str, message: str) -> None:
        self.s.log.info("realtime_warning_not_sent", code=code)

    async def error(
        self, code: str, message: str, fatal: bool, extra: dict[str, Any] | None = None
    ) -> None:
        body = error_body(code, message, self.client_event_id) | (extra or {})
        await self._send("error", error=body)


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
            error_frame("auth_unavailable" if unavailable else "invalid_api_key", str(e))
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
        await ws.send_text(error_frame(e.code, e.message))
        await ws.close(code=e.close_code, reason=e.code)
