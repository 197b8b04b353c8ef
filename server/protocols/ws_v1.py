"""Our own protocol at /v1/ws (docs/protocol.md): JSON events and binary frames, read into
session-core calls and written from the core's happenings. Translation only: the turn
logic, limits and storage live in server/hub/."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocketDisconnect

from server.hub import protocol as p
from server.hub.events import SessionEvents, send_reminder
from server.hub.outbound import SlowConsumer
from server.hub.reminders import reminder_event
from server.hub.store_failures import NO_DATABASE, store_failure
from server.tasks import live as task_live

if TYPE_CHECKING:
    from server.hub.responses import ActiveResponse
    from server.hub.session import Session
    from server.pipelines.speech_out import SpokenChunk
    from server.store.base import ApprovalRecord, ReminderRecord


class WsV1(SessionEvents):
    def __init__(self, session: Session) -> None:
        self.s = session

    def wants_visemes(self) -> bool:
        return bool(self.s.config.get("visemes"))  # session.update {"visemes": true}

    # --- inbound ----------------------------------------------------------------------
    async def read(self) -> None:
        s = self.s
        async for msg in s.frames():
            try:
                if (text := msg.get("text")) is not None:
                    await self._on_text(text)
                elif (data := msg.get("bytes")) is not None:
                    await self._on_binary(data)
            except p.ProtocolError as e:
                await s.error(e.code, e.message, fatal=e.fatal)
                if e.fatal:
                    await s.ws.close(code=1008)
                    return
            except (SlowConsumer, WebSocketDisconnect, asyncio.CancelledError):
                raise
            except Exception as e:  # a bug must not end the session: report it, keep reading
                if store_failure(e):
                    s.log.warning("client_event_store_failed", error=type(e).__name__)
                    await s.error("database_unavailable", f"The message failed: {NO_DATABASE}")
                    continue
                s.log.exception("client_event_failed")
                await s.error("internal_error", "The message failed because of a server error.")

    async def _on_text(self, text: str) -> None:
        self.s.check_text_size(text, '"input_image"' in text[:4096])
        event = p.decode_client_event(text)
        handler = getattr(self, "on_" + event.type.replace(".", "_"))
        await handler(event)

    async def _on_binary(self, data: bytes) -> None:
        s = self.s
        s.check_binary_size(data)
        kind, payload = data[0], data[1:]
        if kind == p.MIC_AUDIO:
            await s.mic_audio(payload)
        elif kind == p.SCREEN_JPEG:
            await s.image("screen", payload, None)
        elif kind == p.CAMERA_JPEG:
            await s.image("camera", payload, None)
        elif kind == p.FACE_LANDMARKS:
            t_ms, points, blendshapes = p.parse_face_frame(data)
            s.submit_landmarks(points, blendshapes, t_ms)
        else:
            raise p.ProtocolError(
                "invalid_frame",
                f"Unknown binary frame kind 0x{kind:02x} (expected 0x01 to 0x04).",
            )

    # --- client events ------------------------------------------------------------------
    async def on_ping(self, ev: p.Ping) -> None:
        await self.s.send({"type": "pong", "id": ev.id} if ev.id is not None else {"type": "pong"})

    async def on_session_update(self, ev: p.SessionUpdate) -> None:
        changes = ev.session.model_dump(exclude_none=True)
        if ev.session.turn_detection is not None:  # omitted silence_ms / threshold keep theirs
            before = self.s.config["turn_detection"]
            kept = {k: before[k] for k in ("silence_ms", "threshold") if k in before}
            td = ev.session.turn_detection.with_type(self.s.settings.turn_detection)
            changes["turn_detection"] = kept | td
        await self.s.update_settings(changes)

    async def on_input_text(self, ev: p.InputText) -> None:
        await self.s.submit_text(ev.text)

    async def on_task_confirm(self, ev: p.TaskConfirm) -> None:
        s = self.s
        s.spawn(task_live.client_event(s.tasks, ev, s.tasks.seq, s.send, s.record_task_answer))

    on_task_executed = on_task_confirm
    on_task_control = on_task_confirm

    async def on_response_cancel(self, ev: p.ResponseCancel) -> None:
        await self.s.cancel_response(settled=False)  # a played report may follow

    async def on_response_audio_played(self, ev: p.AudioPlayed) -> None:
        self.s.audio_played(ev.response_id, ev.played_ms)

    async def on_session_pause(self, ev: p.SessionPause) -> None:
        await self.s.pause()

    async def on_session_resume(self, ev: p.SessionResume) -> None:
        await self.s.resume()

    async def on_session_end(self, ev: p.SessionEnd) -> None:
        await self.s.end()

    async def on_input_image(self, ev: p.InputImage) -> None:
        await self.s.image_b64(ev.source, ev.jpeg_b64, ev.t_ms)

    async def on_input_audio_commit(self, ev: p.InputAudioCommit) -> None:
        await self.s.commit_audio()

    async def on_input_audio_clear(self, ev: p.InputAudioClear) -> None:
        await self.s.clear_audio()
        await self.s.send({"type": "input_audio.cleared"})

    async def on_face_landmarks(self, ev: p.FaceLandmarks) -> None:
        self.s.submit_landmarks(ev.landmarks, ev.blendshapes, ev.t_ms)

    async def on_approval_response(self, ev: p.ApprovalResponse) -> None:
        await self.s.answer_approval(ev.call_id, ev.decision, ev.arguments, ev.message)

    # --- server events ------------------------------------------------------------------
    async def approval_request(self, rec: ApprovalRecord, question: str) -> None:
        await self.s.send(
            {
                "type": "approval.request",
                "call_id": rec.id,
                "name": rec.name,
                "arguments": rec.arguments,
                "description": rec.description,
                "question": question,
                "expires_at": rec.expires_at.isoformat(),
            }
        )

    async def session_created(self) -> None:
        await self.s.send({"type": "session.created", "session": self.s.describe()})

    async def session_updated(self) -> None:
        await self.s.send({"type": "session.updated", "session": self.s.describe()})

    async def session_ended(self, report_url: str) -> None:
        await self.s.send(
            {"type": "session.ended", "session_id": self.s.record.id, "report_url": report_url}
        )

    async def response_created(self, r: ActiveResponse) -> None:
        event: dict[str, Any] = {"type": "response.created", "response_id": r.id}
        if r.trigger is not None:
            event["trigger"] = r.trigger  # a proactive turn: the persona spoke first
        if r.resumes is not None:  # goes on after the user's late decision on this call
            event["continues"] = r.resumes[0].id
        await self.s.send(event)

    async def text_delta(self, r: ActiveResponse, delta: str) -> None:
        event = {"type": "response.text.delta", "response_id": r.id, "delta": delta}
        await self.s.send_delta(r.id, event, "delta")

    async def audio_chunk(self, r: ActiveResponse, seq: int, data: bytes) -> None:
        await self.s.send_bytes(p.audio_frame(r.number, seq, data))

    async def emotion(self, r: ActiveResponse, emotion: str) -> None:
        await self.s.send({"type": "response.emotion", "response_id": r.id, "emotion": emotion})

    async def audio_visemes(
        self, r: ActiveResponse, seq: int, keyframes: list[dict[str, Any]], emotion: str | None
    ) -> None:
        await self.s.send(
            {
                "type": "response.audio.visemes",
                "response_id": r.id,
                "seq": seq,
                "emotion": emotion,
                "keyframes": keyframes,
            }
        )

    async def audio_done(self, r: ActiveResponse, chunks: int, duration_ms: int) -> None:
        await self.s.send(
            {
                "type": "response.audio.done",
                "response_id": r.id,
                "chunks": chunks,
                "duration_ms": duration_ms,
            }
        )

    async def response_done(
        self,
        r: ActiveResponse,
        status: str,
        text: str,
        timings: dict[str, int | None],
        usage: dict[str, int],
    ) -> None:
        event: dict[str, Any] = {
            "type": "response.done",
            "response_id": r.id,
            "status": status,
            "text": text,
            "timings": timings,
            "usage": usage,
        }
        if r.trigger is not None:
            event["trigger"] = r.trigger
        if r.resumes is not None:
            event["continues"] = r.resumes[0].id
        if r.silent_reason is not None:
            event |= {"silent": True, "silent_reason": r.silent_reason}
        await self.s.send(event)

    async def tool_event(self, r: ActiveResponse, event: dict[str, Any]) -> None:
        await self.s.send({"type": event["type"], "response_id": r.id, **event})

    async def speech_sentence(self, r: ActiveResponse, index: int, chunk: SpokenChunk) -> None:
        """Sentences are not marked on /v1/ws: 0x11 chunks stream across them."""

    async def response_stored(self, r: ActiveResponse, status: str, text: str) -> None:
        """response.done went out already (it carries the timings the store keeps)."""

    async def speech_started(self, item_id: str | None, t_ms: int) -> None:
        await self.s.send({"type": "input_audio.speech_started", "t_ms": t_ms, "item_id": item_id})

    async def speech_stopped(self, item_id: str | None, t_ms: int) -> None:
        await self.s.send({"type": "input_audio.speech_stopped", "t_ms": t_ms, "item_id": item_id})

    async def transcript_delta(self, item_id: str | None, text: str) -> None:
        await self.s.send({"type": "transcript.delta", "item_id": item_id, "text": text})

    async def transcript_done(self, item_id: str, text: str, seconds: float = 0.0) -> None:
        await self.s.send({"type": "transcript.done", "item_id": item_id, "text": text})

    async def backchannel(self, item_id: str, text: str) -> None:
        await self.s.send({"type": "input_audio.backchannel", "item_id": item_id, "text": text})

    async def analysis(self, event: dict[str, Any], *, droppable: bool = False) -> None:
        await self.s.send(event, droppable=droppable)

    async def reminder(self, r: ReminderRecord) -> bool:
        return await send_reminder(self.s, lambda: [reminder_event(r)])

    async def server_status(self, event: dict[str, Any]) -> None:
        await self.s.send(event)

    async def warning(self, code: str, message: str) -> None:
        await self.s.send({"type": "warning", "code": code, "message": message})

    async def error(
        self, code: str, message: str, fatal: bool, extra: dict[str, Any] | None = None
    ) -> None:
        await self.s.send(p.error_event(code, message, fatal) | (extra or {}))
