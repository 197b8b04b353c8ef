"""DesktopMatePlus v1 inside a session: its frames as session-core calls, and the reply as
their stream_start / stream_token / tts_chunk (one WAV per sentence, with the sentence's
emotion and keyframes) / stream_end (docs/protocol-dmp.md)."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect

from server.avatar.emotions import expression
from server.hub.events import SessionEvents, send_reminder
from server.hub.outbound import SlowConsumer
from server.hub.protocol import ProtocolError
from server.hub.session import Session
from server.pipelines.chunker import EmotionTrack, SentenceChunker, speakable
from server.pipelines.speech_out import OUT_RATE
from server.protocols.common import persona_for
from server.protocols.dmp_wire import (
    INTERRUPTED,
    NOTHING_TO_INTERRUPT,
    TURN_RUNNING,
    ChatMessage,
    HitlResponse,
    decode_image,
    error,
    message,
)
from server.providers.audio_io import write_wav

if TYPE_CHECKING:
    from server.hub.responses import ActiveResponse
    from server.pipelines.speech_out import SpokenChunk
    from server.protocols.dmp import Connection
    from server.store.base import ApprovalRecord, ReminderRecord


class DmpEvents(SessionEvents):
    """The session's happenings as DMP frames, and DMP frames as session calls."""

    awaits_playback = False  # the client never reports playback; stream_end ends a turn
    reports_playback = False  # a cut turn keeps what was sent (nothing to wait for)

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
        async for msg in s.frames():
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
        previous = self.s.session_id
        await self.s.switch_session(
            opened.record, opened.persona, opened.user_turns, opened.resumed
        )
        await self.s.services.takeovers.switched(self.s, previous)
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
        await self.s.send_delta(
            r.id,
            {
                "type": "stream_token",
                "chunk": delta,
                "node": "model",
                "turn_id": self.turn_ids.get(r.number),
                **self._tail(),
                **self._mark(),
            },
            "chunk",
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
        await self.s.send(self._tts_frame(text.strip(), None, 0.0, emotion))

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
        seconds = len(pcm) / 2 / OUT_RATE
        await self.s.send(self._tts_frame(chunk.text, wav, seconds, chunk.emotion, mouth))

    def _tts_frame(
        self,
        text: str,
        wav_b64: str | None,
        seconds: float,
        emotion: str | None,
        mouth: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The next tts_chunk. Its keyframes: the sentence's mouth timeline (covering the
        audio, each keyframe holding the expression too) when there is one, else one
        keyframe holding the expression. ``emotion``: the persona's mark, null without one."""
        keyframes = mouth or [{"duration": round(seconds, 3), "targets": expression(emotion)}]
        frame = {
            "type": "tts_chunk",
            "sequence": self.sequence,
            "text": text,
            "audio_base64": wav_b64,
            "emotion": emotion,
            "keyframes": keyframes,
            **self._mark(),
        }
        self.sequence += 1
        return frame

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
        """A reminder falls due: a short proactive turn (every frame `proactive: true`),
        sent between replies, never inside one; True once its stream_end was written."""

        def frames() -> list[dict[str, Any]]:
            turn = {"turn_id": str(uuid.uuid4()), "session_id": self.s.record.id}
            turn |= self._tail() | {"proactive": True}
            self.sequence = 0  # the reply before it has ended: its own tts_chunk count
            return [
                {"type": "stream_start", **turn},
                {"type": "stream_token", "chunk": r.text, "node": "reminder", **turn},
                self._tts_frame(r.text, None, 0.0, None) | {"proactive": True},
                {"type": "stream_end", **turn, "content": r.text},
            ]

        return await send_reminder(self.s, frames, between_replies=True)

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

    async def transcript_done(self, item_id: str, text: str, seconds: float = 0.0) -> None:
        """No voice input in DMP v1."""
