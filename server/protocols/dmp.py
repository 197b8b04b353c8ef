"""The DesktopMatePlus v1 protocol at ws /v1/chat/stream (docs/protocol-dmp.md), as its
clients speak it (desktop-homunculus's desktopmate-bridge, the Unity Mate-EnginePlus).

JSON text frames only. `authorize` names the user; each `chat_message` is a typed turn in
one of our ordinary sessions (named by `session_id`, or new); the reply streams as
`stream_start`, `stream_token`s, one `tts_chunk` per sentence (a whole WAV with its
expression and mouth keyframes) and `stream_end` once it is stored. Translation only: the
turn, its limits and its storage are the session core's."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import time
import uuid
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, WebSocket
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.websockets import WebSocketDisconnect

from server.auth import AuthError, Principal, authenticator
from server.avatar.emotions import expression
from server.hub.core import SlowConsumer
from server.hub.events import SessionEvents
from server.hub.expiry import end_when_expired
from server.hub.opening import SessionRefused, open_session, user_slot
from server.hub.protocol import ProtocolError
from server.hub.session import Session
from server.logging import get_logger
from server.pipelines.chunker import EmotionTrack, SentenceChunker, speakable
from server.pipelines.speech_out import OUT_RATE
from server.protocols.common import claimed_user, local_mode, persona_for
from server.protocols.dmp_rest import remember_owner
from server.providers.audio_io import write_wav

if TYPE_CHECKING:
    from server.hub.responses import ActiveResponse
    from server.pipelines.speech_out import SpokenChunk
    from server.services import Services
    from server.store.base import ApprovalRecord, ReminderRecord

log = get_logger(__name__)
router = APIRouter()

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


class Connection:
    """One socket before and during its session: who it is, the heartbeat, and the
    session core once the first chat_message named the conversation."""

    def __init__(self, ws: WebSocket, services: Services) -> None:
        self.ws = ws
        self.services = services
        self.connection_id = str(uuid.uuid4())
        self.auth = authenticator(ws)
        self.principal: Principal | None = None  # with auth configured: from authorize
        self.user_id: str | None = None
        self.authorized = False
        self.session: Session | None = None
        self.last_pong = time.monotonic()
        self._direct = asyncio.Lock()

    async def send(self, event: dict[str, Any]) -> None:
        """Through the session's bounded queue once it exists; directly before."""
        if self.session is not None:
            await self.session.send(event)
            return
        async with self._direct:
            await self.ws.send_text(json.dumps(event, ensure_ascii=False))

    # --- heartbeat --------------------------------------------------------------------
    async def heartbeat(self) -> None:
        """`ping` every DMP_PING_INTERVAL_S; no `pong` within DMP_PONG_TIMEOUT_S: 4000."""
        s = self.services.settings
        while True:
            await asyncio.sleep(s.dmp_ping_interval_s)
            sent = time.monotonic()
            await self.send(message("ping"))
            await asyncio.sleep(s.dmp_pong_timeout_s)
            if self.last_pong < sent:
                log.info("dmp_ping_timeout", connection_id=self.connection_id)
                if self.session is not None:
                    self.session.close(PING_TIMEOUT, "Ping timeout")
                else:
                    with contextlib.suppress(Exception):
                        await self.ws.close(code=PING_TIMEOUT, reason="Ping timeout")
                return

    # --- before the first chat_message ------------------------------------------------------
    async def serve(self) -> None:
        beat = asyncio.create_task(self.heartbeat())
        try:
            first = await self._until_first_chat()
            if first is not None:
                await self._run_session(first)
        except (WebSocketDisconnect, RuntimeError, SlowConsumer):
            pass
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    async def _until_first_chat(self) -> tuple[ChatMessage, str] | None:
        """Handle frames until a chat_message can start a session; None: the socket ended."""
        while True:
            msg = await self.ws.receive()
            if msg["type"] == "websocket.disconnect":
                return None
            obj = await self.parse(msg)
            if obj is None:
                continue
            kind = obj["type"]
            if kind == "authorize":
                if not await self.authorize(obj):
                    return None
            elif kind == "pong":
                self.last_pong = time.monotonic()
            elif not self.authorized:
                await self.send(error("Authentication required"))
            elif kind == "chat_message":
                chat = await self.chat_message(obj)
                if chat is not None:
                    return chat
            elif kind == "interrupt_stream":
                await self.send(error("No active turns to interrupt", NOTHING_TO_INTERRUPT))
            else:
                await self.send(error(f"Unsupported message type: {kind}"))

    async def parse(self, msg: dict[str, Any]) -> dict[str, Any] | None:
        """A frame as a JSON object with a type, or None after telling the client why not."""
        text = msg.get("text")
        if text is None:
            await self.send(error("Binary frames are not part of this protocol."))
            return None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            await self.send(error(f"Invalid JSON format: {e.msg}"))
            return None
        if not isinstance(obj, dict) or not obj.get("type"):
            await self.send(error("Missing message type"))
            return None
        if not isinstance(obj["type"], str):
            await self.send(error("Invalid message format"))
            return None
        return obj

    async def authorize(self, obj: dict[str, Any]) -> bool:
        token = obj.get("token")
        user_id = obj.get("user_id")
        if not isinstance(token, str) or (user_id is not None and not isinstance(user_id, str)):
            await self.send(error("Invalid message format"))
            return True
        try:
            user: str | None = None
            if not self.auth.local or user_id:
                self.principal = await claimed_user(self.auth, token, user_id)
                user = self.principal.user_id
            if self.user_id is not None and user is not None and user != self.user_id:
                raise AuthError("This connection already speaks for another user.")
        except AuthError as e:
            await self.send(message("authorize_error", error=str(e)))
            with contextlib.suppress(Exception):
                await self.ws.close(code=AUTH_FAILED, reason="Authentication failed")
            return False
        self.user_id = self.user_id or user
        self.authorized = True
        await self.send(message("authorize_success", connection_id=self.connection_id))
        return True

    async def chat_message(self, obj: dict[str, Any]) -> tuple[ChatMessage, str] | None:
        """A valid chat_message and the user it speaks for, or None after an error."""
        try:
            chat = ChatMessage.model_validate(obj)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            await self.send(error(f"Invalid chat message format: {where}: {first['msg']}"))
            return None
        try:
            if self.auth.local:
                user = (await claimed_user(self.auth, None, chat.user_id)).user_id
            else:  # the token given at authorize decides
                user = self.user_id or ""
                if chat.user_id != user:
                    raise AuthError("user_id does not match the user of this token.")
        except AuthError as e:
            await self.send(error(str(e)))
            return None
        if self.user_id is not None and user != self.user_id:
            await self.send(error("user_id does not match the user of this connection."))
            return None
        return chat, user

    # --- the session --------------------------------------------------------------------
    async def _run_session(self, first: tuple[ChatMessage, str]) -> None:
        chat, user = first
        self.user_id = user
        try:
            with user_slot(self.services, user):
                opened = await self.open(chat)
                if opened is None:
                    return await self._after_refusal()
                events: DmpEvents | None = None

                def protocol(s: Session) -> DmpEvents:
                    nonlocal events
                    events = DmpEvents(s, self, chat)
                    return events

                self.session = Session(
                    self.ws,
                    self.services,
                    user,
                    opened.record,
                    opened.persona,
                    opened.user_turns,
                    opened.resumed,
                    protocol,
                )
                expires = self.principal.expires_at if self.principal else None
                if expires is not None:
                    leeway = self.services.settings.jwt_leeway_s
                    self.session.spawn(end_when_expired(self.session, expires + leeway))
                log.info("dmp_session_open", session_id=opened.record.id, user_id=user)
                await self.session.run()
        except SessionRefused as e:
            await self.send(error(e.message))

    async def _after_refusal(self) -> None:
        """The first chat_message named a session we cannot open: keep listening."""
        first = await self._until_first_chat()
        if first is not None:
            await self._run_session(first)

    async def open(self, chat: ChatMessage) -> Any:
        """The session a chat_message names (its own user's only), or None after an error."""
        assert self.user_id is not None
        pid = persona_for(self.services, chat.persona_id, chat.agent_id)
        try:
            opened = await open_session(self.services, self.user_id, pid, chat.session_id)
        except SessionRefused as e:
            await self.send(error(e.message))
            return None
        if local_mode(self.services):
            remember_owner(opened.record.id, self.user_id)
        return opened


class DmpEvents(SessionEvents):
    """The session's happenings as DMP frames, and DMP frames as session calls."""

    awaits_playback = False  # the client never reports playback; stream_end ends a turn

    def wants_visemes(self) -> bool:
        return True  # tts_chunk.keyframes drive the mascot's mouth

    def __init__(self, session: Session, conn: Connection, first: ChatMessage) -> None:
        self.s = session
        self.conn = conn
        self.first: ChatMessage | None = first
        self.turn_ids: dict[int, str] = {}
        self.audio = bytearray()  # the sentence being spoken, pcm16 24 kHz
        self.mouth: list[dict[str, Any]] = []  # its mouth keyframes, chunk by chunk
        self.chunker: SentenceChunker | None = None  # sentences when audio is off
        self.emotions = EmotionTrack()  # their emotions when audio is off
        self.sequence = 0
        self.proactive = False  # the turn being sent is proactive: its frames say so
        self.hitl: list[str] = []  # call ids asked by hitl_request, oldest first

    # --- inbound ----------------------------------------------------------------------
    async def read(self) -> None:
        s = self.s
        if self.first is not None:
            chat, self.first = self.first, None
            await self.guarded(self.start(chat, opened=True))
        while not s.closed:
            msg = await s.ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            if not s.admit():
                continue
            if (text := msg.get("text")) is not None:
                try:
                    s.check_text_size(text, '"images"' in text)
                except ProtocolError as e:
                    await self.error(e.code, e.message, False)
                    continue
            obj = await self.conn.parse(msg)
            if obj is not None:
                await self.guarded(self.dispatch(obj))

    async def guarded(self, work: Any) -> None:
        try:
            await work
        except ProtocolError as e:
            await self.error(e.code, e.message, e.fatal)
        except (SlowConsumer, WebSocketDisconnect, asyncio.CancelledError):
            raise
        except Exception:  # a bug must not end the session: report it, keep reading
            self.s.log.exception("dmp_event_failed")
            await self.s.send(error("Failed to process message: internal error"))

    async def dispatch(self, obj: dict[str, Any]) -> None:
        kind = obj["type"]
        if kind == "pong":
            self.conn.last_pong = time.monotonic()
        elif kind == "chat_message":
            got = await self.conn.chat_message(obj)
            if got is not None:
                await self.start(got[0])
        elif kind == "interrupt_stream":
            turn_id = obj.get("turn_id")
            await self.interrupt(turn_id if isinstance(turn_id, str) else None)
        elif kind == "authorize":
            await self.conn.authorize(obj)
        elif kind == "hitl_response":
            await self.hitl_response(obj)
        else:
            await self.s.send(error(f"Unsupported message type: {kind}"))

    async def hitl_response(self, obj: dict[str, Any]) -> None:
        """Decisions for the pending hitl_requests, in the order they were sent (theirs
        carry no call id); settled meanwhile (by voice, another socket, expiry) ones are
        skipped. Each decision is stored, then its turn goes on."""
        try:
            answer = HitlResponse.model_validate(obj)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            await self.s.send(error(f"Invalid hitl_response format: {where}: {first['msg']}"))
            return
        store = self.s.services.store
        pending = []
        for call_id in self.hitl:
            rec = await store.get_approval(self.s.user_id, call_id)
            if rec is not None and rec.status == "pending":
                pending.append(call_id)
        self.hitl = pending
        if len(answer.decisions) > len(pending):
            await self.s.send(
                error(f"{len(answer.decisions)} decisions for {len(pending)} pending approvals")
            )
            return
        for d, call_id in zip(answer.decisions, pending, strict=False):
            self.hitl.remove(call_id)
            args = d.edited_action.args if d.edited_action is not None else None
            await self.s.answer_approval(call_id, d.type, args, d.message)

    async def start(self, chat: ChatMessage, opened: bool = False) -> None:
        """A typed turn; ``opened``: its session was opened for it already."""
        s = self.s
        current = s.response
        if current is not None and s.response_active():
            turn_id = self.turn_ids.get(current.number, "")
            await s.send(
                error(
                    f"Another turn is already active (turn_id: {turn_id}, status: processing)."
                    " Please wait for the current turn to complete or interrupt it before"
                    " starting a new turn.",
                    TURN_RUNNING,
                )
            )
            return
        if not opened and chat.session_id != s.record.id:
            if not await self.switch(chat):
                return
        changes: dict[str, Any] = {}
        pid = persona_for(s.services, chat.persona_id, chat.agent_id)
        if pid is not None and pid != s.persona.id:
            changes["persona"] = pid
        voice = chat.reference_id or None
        if voice != s.config["voice"]:
            changes["voice"] = voice
        fmt = "pcm16" if chat.tts_enabled else "none"
        if fmt != s.config["output_audio"]:
            changes["output_audio"] = fmt
        if changes:
            await s.update_settings(changes)
        for image in chat.images or []:
            await s.show_screen(decode_image(image))
        await s.submit_text(chat.content)

    async def switch(self, chat: ChatMessage) -> bool:
        """The client moved to another conversation (or a new one: no session_id)."""
        opened = await self.conn.open(chat)
        if opened is None:
            return False
        await self.s.switch_session(
            opened.record, opened.persona, opened.user_turns, opened.resumed
        )
        return True

    async def interrupt(self, turn_id: str | None) -> None:
        s = self.s
        r = s.response
        active = r is not None and s.response_active()
        current = self.turn_ids.get(r.number) if r is not None else None
        if turn_id and (not active or turn_id != current):
            await s.send(
                error(f"Active turn {turn_id} not found or already finished", NOTHING_TO_INTERRUPT)
            )
            return
        if not active:
            await s.send(error("No active turns to interrupt", NOTHING_TO_INTERRUPT))
            return
        await s.cancel_response()  # stream_end (interrupted) is out once this returns
        text = f"Turn {turn_id} interrupted" if turn_id else "Interrupted 1 active turns"
        await s.send(error(text, INTERRUPTED))

    # --- outbound: the reply ------------------------------------------------------------
    def _ids(self, r: ActiveResponse) -> dict[str, Any]:
        return {"turn_id": self.turn_ids.get(r.number), "session_id": self.s.record.id}

    def _tail(self) -> dict[str, Any]:
        return {"connection_id": self.conn.connection_id, "user_id": self.s.user_id}

    async def response_created(self, r: ActiveResponse) -> None:
        self.turn_ids[r.number] = str(uuid.uuid4())
        self.audio.clear()
        self.mouth.clear()
        self.sequence = 0
        self.chunker = SentenceChunker() if self.s.config["output_audio"] == "none" else None
        self.emotions = EmotionTrack()
        self.proactive = r.trigger is not None
        await self.s.send({"type": "stream_start", **self._ids(r), **self._mark(), **self._tail()})

    def _mark(self) -> dict[str, Any]:
        """A proactive turn's frames carry `proactive: true`, as the original backend's
        proactive service sets on every event of the turn."""
        return {"proactive": True} if self.proactive else {}

    async def text_delta(self, r: ActiveResponse, delta: str) -> None:
        await self.s.send(
            {
                "type": "stream_token",
                "chunk": delta,
                "node": "model",
                "turn_id": self.turn_ids.get(r.number),
                **self._tail(),
                **self._mark(),
            }
        )
        if self.chunker is not None:
            self.emotions.feed(delta)
            for sentence in self.chunker.push(delta):
                await self._silent_chunk(sentence)

    async def emotion(self, r: ActiveResponse, emotion: str) -> None:
        self.emotions.mark(emotion)  # with audio, SpeechOut tracks it for each sentence

    async def _silent_chunk(self, text: str) -> None:
        """tts_enabled false: each sentence still comes with its expression, no audio."""
        emotion = self.emotions.chunk(text)
        if not speakable(text):
            return
        await self._tts_chunk(text.strip(), None, 0.0, emotion)

    async def audio_chunk(self, r: ActiveResponse, seq: int, data: bytes) -> None:
        self.audio += data

    async def audio_visemes(
        self, r: ActiveResponse, seq: int, keyframes: list[dict[str, Any]], emotion: str | None
    ) -> None:
        self.mouth += keyframes  # each holds the sentence's expression too

    async def speech_sentence(self, r: ActiveResponse, index: int, chunk: SpokenChunk) -> None:
        # The audio runs ahead of the sentence ends: take this sentence's samples only.
        size = 2 * round(chunk.duration_ms * OUT_RATE / 1000)
        pcm, self.audio = bytes(self.audio[:size]), self.audio[size:]
        mouth, self.mouth = self.mouth, []
        wav = base64.b64encode(write_wav(pcm, OUT_RATE)).decode() if pcm else None
        await self._tts_chunk(chunk.text, wav, len(pcm) / 2 / OUT_RATE, chunk.emotion, mouth)

    async def _tts_chunk(
        self,
        text: str,
        wav_b64: str | None,
        seconds: float,
        emotion: str | None,
        mouth: list[dict[str, Any]] | None = None,
    ) -> None:
        """The sentence's keyframes: its mouth timeline (covering the audio, each keyframe
        holding the expression too) when there is one, else one keyframe holding the
        expression. ``emotion``: the persona's mark for the sentence, null without one."""
        keyframes = mouth or [{"duration": round(seconds, 3), "targets": expression(emotion)}]
        await self.s.send(
            {
                "type": "tts_chunk",
                "sequence": self.sequence,
                "text": text,
                "audio_base64": wav_b64,
                "emotion": emotion,
                "keyframes": keyframes,
                **self._mark(),
            }
        )
        self.sequence += 1

    async def audio_done(self, r: ActiveResponse, chunks: int, duration_ms: int) -> None:
        self.audio.clear()  # a sentence cut short by a TTS failure is not sent half
        self.mouth.clear()

    async def response_done(
        self,
        r: ActiveResponse,
        status: str,
        text: str,
        timings: dict[str, int | None],
        usage: dict[str, int],
    ) -> None:
        if self.chunker is not None and status == "completed":
            for sentence in self.chunker.flush():
                await self._silent_chunk(sentence)
        self.chunker = None

    async def response_stored(self, r: ActiveResponse, status: str, text: str) -> None:
        """stream_end once the turn is stored (after every tts_chunk)."""
        end: dict[str, Any] = {"type": "stream_end", **self._ids(r), "content": text}
        if status == "cancelled":
            end |= {"reason": "Client requested interruption", "status": "interrupted"}
        elif status == "failed":
            end |= {"status": "failed"}
        await self.s.send(end | self._tail() | self._mark())
        self.turn_ids.pop(r.number, None)
        self.proactive = False

    # --- outbound: the rest -----------------------------------------------------------
    async def approval_request(self, rec: ApprovalRecord, question: str) -> None:
        """Their hitl_request, one action per request (the persona also says `question`);
        `call_id` is ours, extra."""
        if rec.id not in self.hitl:
            self.hitl.append(rec.id)
        await self.s.send(
            message(
                "hitl_request",
                session_id=self.s.record.id,
                action_requests=[
                    {
                        "name": rec.name,
                        "args": rec.arguments,
                        "description": rec.description,
                        "call_id": rec.id,
                    }
                ],
                review_configs=[
                    {"action_name": rec.name, "allowed_decisions": ["approve", "edit", "reject"]}
                ],
            )
        )

    async def reminder(self, r: ReminderRecord) -> bool:
        """A reminder falls due: a short proactive turn (their stream_start `proactive`),
        sent between replies, never inside one; True once its stream_end was written."""
        while (r0 := self.s.response) is not None and r0.task and self.s.response_active():
            await asyncio.wait({r0.task})
        turn = {"turn_id": str(uuid.uuid4()), "session_id": self.s.record.id}
        self.proactive = True
        try:
            mark = self._mark()
            await self.s.send({"type": "stream_start", **turn, **mark, **self._tail()})
            await self.s.send(
                {"type": "stream_token", "chunk": r.text, "node": "reminder", **turn}
                | self._tail()
                | mark
            )
            self.sequence = 0
            await self._tts_chunk(r.text, None, 0.0, None)
            end = {"type": "stream_end", **turn, "content": r.text, **self._tail(), **mark}
            return await self.s.send_confirmed(end)
        finally:
            self.proactive = False

    async def error(
        self, code: str, message: str, fatal: bool, extra: dict[str, Any] | None = None
    ) -> None:
        await self.s.send(error(message))

    async def warning(self, code: str, message: str) -> None:
        self.s.log.info("dmp_warning_not_sent", code=code)  # no such event in DMP v1

    async def analysis(self, event: dict[str, Any], *, droppable: bool = False) -> None:
        """Face/voice/screen analysis has no DMP event; the persona still perceives it."""

    async def session_created(self) -> None:
        """DMP has no session events: stream_start carries the session id."""

    async def session_updated(self) -> None:
        """No DMP event."""

    async def session_ended(self, report_url: str) -> None:
        """No DMP event."""

    async def speech_started(self, item_id: str | None, t_ms: int) -> None:
        """No voice input in DMP v1."""

    async def speech_stopped(self, item_id: str | None, t_ms: int) -> None:
        """No voice input in DMP v1."""

    async def transcript_delta(self, item_id: str | None, text: str) -> None:
        """No voice input in DMP v1."""

    async def transcript_done(self, item_id: str, text: str) -> None:
        """No voice input in DMP v1."""


@router.websocket("/v1/chat/stream")
async def dmp_endpoint(ws: WebSocket) -> None:
    await ws.accept()
    await Connection(ws, ws.app.state.services).serve()
