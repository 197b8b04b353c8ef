"""One live WebSocket session: reads client events, runs one persona response at a time,
and writes events through a bounded outbound queue (a slow client never makes us buffer
without bound; see docs/protocol.md, "Back-pressure")."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import openai
from starlette.websockets import WebSocket, WebSocketDisconnect

from server import jsonout
from server.agent.graph import TurnDelta, TurnFinished
from server.agent.state import TurnContext
from server.hub import protocol as p
from server.hub.limits import MessageLimiter
from server.hub.reminders import deliver_reminders
from server.logging import get_logger, redact
from server.personas import Persona
from server.pipelines.audio import Utterance, VoiceInput
from server.pipelines.face import FaceConfig, FacePipeline, InvalidFaceInput
from server.pipelines.speech_out import SpeechOut
from server.pipelines.vision import ScreenPipeline
from server.pipelines.voice_analysis import VoiceAnalysis
from server.providers.llm import LLMNotConfigured
from server.providers.stt import Transcript
from server.store.base import Sample, SessionRecord, utcnow
from server.tasks import live as task_live

if TYPE_CHECKING:
    import numpy as np

    from server.services import Services

log = get_logger(__name__)

OUTPUT_RATE = 24_000


@dataclass
class ActiveResponse:
    number: int
    user_text: str
    t0: float
    task: asyncio.Task[None] | None = None
    sent: list[str] = field(default_factory=list)
    first_delta_at: float | None = None
    first_audio_at: float | None = None
    generated_at: float | None = None
    played_ms: int | None = None
    finished: bool = False
    speech: SpeechOut | None = None
    speech_task: asyncio.Task[None] | None = None
    played: asyncio.Event = field(default_factory=asyncio.Event)
    playback_done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def id(self) -> str:
        return p.response_id(self.number)

    @property
    def sent_text(self) -> str:
        return "".join(self.sent)


class SlowConsumer(Exception):
    """The client did not read for ws_send_timeout_s while we had data that must not drop."""


class Session:
    def __init__(
        self,
        ws: WebSocket,
        services: Services,
        user_id: str,
        record: SessionRecord,
        persona: Persona,
        user_turns: int,
        resumed: bool,
    ) -> None:
        self.ws = ws
        self.services = services
        self.settings = services.settings
        self.user_id = user_id
        self.record = record
        self.persona = persona
        self.user_turns = user_turns
        self.resumed = resumed
        self.config: dict[str, Any] = {
            "voice": None,
            "instructions": None,
            "temperature": None,
            "max_tokens": None,
            "output_audio": services.settings.default_output_audio,
            "turn_detection": {"type": "server_vad"},
        } | {k: v for k, v in record.settings.items() if k != "persona"}
        self.paused = record.status == "paused"
        self.outbound: asyncio.Queue[str | bytes | None] = asyncio.Queue(
            maxsize=self.settings.ws_outbound_queue
        )
        self.dropped_events = 0
        self.response: ActiveResponse | None = None
        self._response_counter = 0
        self.limiter = MessageLimiter(
            self.settings.ws_max_messages_per_s,
            services.user_limits.bucket(user_id),
            self._rate_limited,
            self.spawn,
        )
        self._closed = asyncio.Event()
        self.slow_consumer = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.perception: Any = self  # the agent's perceive node reads latest_* below
        self.log = log.bind(session_id=record.id)
        self._warned_tts = False
        self.voice_in: VoiceInput | None = None
        if services.vad is not None:
            self.voice_in = VoiceInput(self, services.vad, services.stt)
            self.voice_in.set_turn_detection(self.config["turn_detection"])
        # Timeline clock for stored samples: ms since the session started (a resumed
        # session continues its timeline instead of restarting at 0).
        self._t0 = time.monotonic()
        self._timeline_base_ms = max(0.0, (utcnow() - aware(record.started_at)).total_seconds())
        self._timeline_base_ms *= 1000
        self.face = FacePipeline(
            FaceConfig.from_settings(self.settings),
            emit=self._send_analysis,
            report_error=self.error,
            save_samples=self._save_samples,
            session_ms=self.timeline_ms,
            provider=lambda: services.face,
            executor=services.face_executor,
            on_model_status=services.face_model_status,
            logger=self.log,
        )
        self._warned_face = False
        self.voice_analysis = VoiceAnalysis(
            emit=self.send,
            save_samples=self._save_samples,
            timeline_offset_ms=self._timeline_base_ms,
            logger=self.log,
        )
        self.screen: ScreenPipeline | None = None
        self._warned_vision = False
        if services.screen_describer is not None:
            self.screen = ScreenPipeline(
                services.screen_describer,
                user_id,
                self.send,
                self.error,
                min_interval_s=self.settings.vlm_min_interval_s,
                change_threshold=self.settings.screen_change_threshold,
                spawn=self.spawn,
                logger=self.log,
            )
            if services.screen_capture is not None:
                services.screen_capture.subscribe(self.screen, lambda: not self.paused)

        self.tasks = services.tasks.get(user_id)
        self._detach_tasks = self.tasks.attach(task_live.listener(self.send, persona.language))

    # --- lifecycle --------------------------------------------------------------------
    async def run(self) -> None:
        writer = asyncio.create_task(self._writer())
        reader = asyncio.create_task(self._read_until_closed())
        closed = asyncio.create_task(self._closed.wait())
        try:
            await self.send(self.created_event())
            self.spawn(
                deliver_reminders(
                    self.services.store,
                    self.services.reminder_watchers,
                    self.user_id,
                    self.send,
                    self.settings.reminder_check_s,
                )
            )
            # Ends on disconnect, session.end, a fatal error or a slow consumer. A slow
            # consumer's socket cannot take even a close frame, so we never write to it.
            await asyncio.wait({reader, closed}, return_when=asyncio.FIRST_COMPLETED)
        except SlowConsumer:
            pass
        finally:
            reader.cancel()
            closed.cancel()
            self._detach_tasks()
            await self.cancel_response()
            await self.close_perception()
            for t in list(self._tasks):
                t.cancel()
            await self._shutdown_writer(writer)
            if self.record.status == "active":
                await self.services.store.update_session(
                    self.user_id, self.record.id, status="paused"
                )
            self.log.info("session_closed", dropped_events=self.dropped_events)

    async def _shutdown_writer(self, writer: asyncio.Task[None]) -> None:
        """Flush what is queued (e.g. session.ended) and close normally, unless the client
        stopped reading: then drop it all, since even a close frame would never leave."""
        self._closed.set()
        if not self.slow_consumer and not writer.done():
            with contextlib.suppress(asyncio.QueueFull):
                self.outbound.put_nowait(None)
            await asyncio.wait({writer}, timeout=self.settings.ws_send_timeout_s)
            if writer.done():
                with contextlib.suppress(Exception):
                    await self.ws.close(code=1000)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def created_event(self) -> dict[str, Any]:
        return {"type": "session.created", "session": self.describe()}

    def describe(self) -> dict[str, Any]:
        fmt = self.config["output_audio"]
        return {
            "id": self.record.id,
            "thread_id": self.record.thread_id,
            "user_id": self.user_id,
            "status": "paused" if self.paused else "active",
            "resumed": self.resumed,
            "persona": {"id": self.persona.id, "name": self.persona.name},
            "input_audio": {"format": "pcm16", "rate": 16000},
            "output_audio": {"format": fmt, "rate": OUTPUT_RATE if fmt != "none" else None},
            "voice": self.config["voice"] or self.persona.tts_voice,
            "instructions": self.config["instructions"],
            "temperature": self.config["temperature"],
            "max_tokens": self.config["max_tokens"],
            "turn_detection": self.config["turn_detection"],
        }

    # --- outbound ---------------------------------------------------------------------
    async def send(self, event: dict[str, Any], *, droppable: bool = False) -> None:
        await self._put(jsonout.dumps(event), droppable)

    async def send_bytes(self, data: bytes) -> None:
        await self._put(data, False)

    async def warn(self, code: str, message: str) -> None:
        await self.send({"type": "warning", "code": code, "message": message})

    async def error(self, code: str, message: str, *, fatal: bool = False) -> None:
        await self.send(p.error_event(code, message, fatal))

    async def _put(self, item: str | bytes, droppable: bool) -> None:
        if self._closed.is_set():
            return
        try:
            self.outbound.put_nowait(item)
            return
        except asyncio.QueueFull:
            if droppable:  # analysis events: the next one supersedes this one
                self.dropped_events += 1
                return
        try:
            async with asyncio.timeout(self.settings.ws_send_timeout_s):
                await self.outbound.put(item)
        except TimeoutError:
            self.log.warning("slow_consumer_closed", queued=self.outbound.qsize())
            self.slow_consumer = True
            self._closed.set()
            raise SlowConsumer from None

    async def _writer(self) -> None:
        try:
            while True:
                item = await self.outbound.get()
                if item is None:
                    return
                if isinstance(item, str):
                    await self.ws.send_text(item)
                else:
                    await self.ws.send_bytes(item)
        except (WebSocketDisconnect, RuntimeError, OSError):
            self._closed.set()

    # --- inbound ----------------------------------------------------------------------
    async def _read_until_closed(self) -> None:
        try:
            await self._reader()
        except (WebSocketDisconnect, RuntimeError):  # RuntimeError: receive after disconnect
            pass
        finally:
            self._closed.set()

    async def _reader(self) -> None:
        while not self._closed.is_set():
            msg = await self.ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            if not self.limiter.allow():
                continue
            try:
                if (text := msg.get("text")) is not None:
                    await self._on_text(text)
                elif (data := msg.get("bytes")) is not None:
                    await self._on_binary(data)
            except p.ProtocolError as e:
                await self.error(e.code, e.message, fatal=e.fatal)
                if e.fatal:
                    await self.ws.close(code=1008)
                    return
            except (SlowConsumer, WebSocketDisconnect, asyncio.CancelledError):
                raise
            except Exception:  # a bug must not end the session: report it, keep reading
                self.log.exception("client_event_failed")
                await self.error("internal_error", "The message failed because of a server error.")

    async def _rate_limited(self, dropped: int, which: str) -> None:
        s = self.settings
        limit = (
            f"{s.ws_max_messages_per_s:g} per second on one connection"
            if which == "connection"
            else f"{s.ws_user_max_messages_per_s:g} per second for all of a user's connections"
        )
        event = p.error_event(
            "rate_limited", f"Too many messages: the limit is {limit}. {dropped} were dropped."
        )
        await self.send(event | {"dropped": dropped, "limit": which})

    async def _on_text(self, text: str) -> None:
        size = len(text.encode())
        s = self.settings
        # input_image carries a base64 JPEG: it may be as large as a binary frame (+1/3).
        if size > max(s.ws_max_text_bytes, s.ws_max_image_text_bytes) or (
            size > s.ws_max_text_bytes and '"input_image"' not in text[:4096]
        ):
            raise p.ProtocolError(
                "message_too_large",
                f"Text frames are limited to {s.ws_max_text_bytes} bytes "
                f"(input_image: {s.ws_max_image_text_bytes}).",
            )
        event = p.decode_client_event(text)
        handler = getattr(self, "on_" + event.type.replace(".", "_"))
        await handler(event)

    async def _on_binary(self, data: bytes) -> None:
        if len(data) > self.settings.ws_max_binary_bytes:
            raise p.ProtocolError(
                "message_too_large",
                f"Binary frames are limited to {self.settings.ws_max_binary_bytes} bytes.",
            )
        if not data:
            raise p.ProtocolError("invalid_frame", "Empty binary frame.")
        kind, payload = data[0], data[1:]
        if kind == p.MIC_AUDIO:
            await self.on_mic_audio(payload)
        elif kind == p.SCREEN_JPEG:
            await self.on_image("screen", payload, None)
        elif kind == p.CAMERA_JPEG:
            await self.on_image("camera", payload, None)
        elif kind == p.FACE_LANDMARKS:
            await self.on_face_frame(data)
        else:
            raise p.ProtocolError(
                "invalid_frame",
                f"Unknown binary frame kind 0x{kind:02x} (expected 0x01 to 0x04).",
            )

    # --- event handlers -----------------------------------------------------------------
    async def on_ping(self, ev: p.Ping) -> None:
        await self.send({"type": "pong", "id": ev.id} if ev.id is not None else {"type": "pong"})

    async def on_session_update(self, ev: p.SessionUpdate) -> None:
        changes = ev.session.model_dump(exclude_none=True)
        if "persona" in changes:
            persona = self.services.personas.get(changes.pop("persona"))
            if persona is None:
                raise p.ProtocolError("unknown_persona", "No persona with that id.")
            if persona.id != self.persona.id:
                self.persona = persona
                self.user_turns = await self.services.store.count_messages(
                    self.user_id, persona.id, "user"
                )
        self.config.update(changes)
        self.on_config_changed(changes)
        stored = {**self.config, "persona": self.persona.id}
        await self.services.store.update_session(self.user_id, self.record.id, settings=stored)
        await self.send({"type": "session.updated", "session": self.describe()})

    def on_config_changed(self, changes: dict[str, Any]) -> None:
        """Pipelines that depend on session settings follow them."""
        if self.voice_in is not None and "turn_detection" in changes:
            self.voice_in.set_turn_detection(self.config["turn_detection"])

    async def on_input_text(self, ev: p.InputText) -> None:
        text = ev.text.strip()
        if not text:
            raise p.ProtocolError("invalid_event", "input_text needs non-blank text.")
        if len(text) > self.settings.max_input_chars:
            raise p.ProtocolError(
                "message_too_large",
                f"Text turns are limited to {self.settings.max_input_chars} characters.",
            )
        if self.paused:
            raise p.ProtocolError("session_paused", "The session is paused; resume it first.")
        await self.start_turn(text)

    async def on_task_confirm(self, ev: p.TaskConfirm) -> None:
        self.spawn(task_live.client_event(self.tasks, ev, self.tasks.seq, self.send))

    on_task_executed = on_task_confirm
    on_task_control = on_task_confirm

    async def on_response_cancel(self, ev: p.ResponseCancel) -> None:
        await self.cancel_response()

    async def on_response_audio_played(self, ev: p.AudioPlayed) -> None:
        """The client says how much of a reply it played: barge-in truncation uses it."""
        r = self.response
        if r is None or r.id != ev.response_id:
            return
        r.played_ms = ev.played_ms
        r.played.set()
        if r.speech is not None and r.speech_task is not None and r.speech_task.done():
            if ev.played_ms >= r.speech.duration_ms - 100:
                r.playback_done.set()

    async def on_session_pause(self, ev: p.SessionPause) -> None:
        await self.cancel_response()
        self.paused = True
        self.record.status = "paused"
        await self.services.store.update_session(self.user_id, self.record.id, status="paused")
        await self.send({"type": "session.updated", "session": self.describe()})

    async def on_session_resume(self, ev: p.SessionResume) -> None:
        self.paused = False
        self.record.status = "active"
        await self.services.store.update_session(self.user_id, self.record.id, status="active")
        await self.send({"type": "session.updated", "session": self.describe()})

    async def on_session_end(self, ev: p.SessionEnd) -> None:
        await self.cancel_response()
        await self.on_ending()  # timelines land before the session counts as ended
        self.record.status = "ended"
        await self.services.store.update_session(
            self.user_id, self.record.id, status="ended", ended_at=utcnow()
        )
        await self.send(
            {
                "type": "session.ended",
                "session_id": self.record.id,
                "report_url": f"/v1/sessions/{self.record.id}/report",
            }
        )
        self._closed.set()  # run() flushes the queue, then closes with 1000

    async def on_ending(self) -> None:
        """Hook: pipelines flush their timelines before the session ends."""
        await self.voice_analysis.drain()
        await self.face.flush()

    async def on_mic_audio(self, payload: bytes) -> None:
        if self.voice_in is None:
            raise p.ProtocolError("not_supported", "Audio input is not enabled on this server.")
        if (why := self.voice_in.check_frame(payload)) is not None:
            raise p.ProtocolError("invalid_audio", why)
        if self.paused:
            return
        if problem := self.voice_in.feed(payload):
            await self.error("audio_overrun", problem)

    async def on_image(self, source: str, jpeg: bytes, t_ms: int | None) -> None:
        if source == "camera":
            await self._on_camera_frame(jpeg, t_ms)
        else:
            await self._on_screen_frame(jpeg, t_ms)

    async def _on_screen_frame(self, jpeg: bytes, t_ms: int | None) -> None:
        """Screen frames go to the latest-wins screen pipeline; without a VLM they are
        dropped, and the client is told once per session (not once per frame). The user's
        screen task (if any) gets them too."""
        self.tasks.on_frame(jpeg)
        if self.screen is None:
            if not self._warned_vision:
                self._warned_vision = True
                await self.error(
                    "vision_unavailable",
                    "Screen frames are dropped: no vision model is configured on this server "
                    "(set VLM_BASE_URL/VLM_MODEL, or LLM_BASE_URL, and VLM_ENABLED=true).",
                )
            return
        if self.paused:
            return
        if problem := self.screen.feed(jpeg, t_ms):
            raise p.ProtocolError("invalid_image", f"Screen frame dropped: {problem}.")

    async def on_input_image(self, ev: p.InputImage) -> None:
        import base64
        import binascii

        try:
            data = base64.b64decode(ev.jpeg_b64, validate=True)
        except (binascii.Error, ValueError):
            raise p.ProtocolError("invalid_image", "jpeg_b64 is not valid base64.") from None
        await self.on_image(ev.source, data, ev.t_ms)

    async def on_input_audio_commit(self, ev: p.InputAudioCommit) -> None:
        if self.voice_in is None:
            raise p.ProtocolError("not_supported", "Audio input is not enabled on this server.")
        await self.voice_in.commit()

    def stt_language(self) -> str | None:
        lang = self.settings.stt_language or self.persona.language
        return None if lang == "auto" else lang.split("-")[0]

    async def on_utterance(self, utt: Utterance, transcript: Transcript) -> None:
        """Hook: a final user utterance (voice analysis uses it)."""
        self.voice_analysis.submit(utt, transcript)  # spawned: the turn does not wait

    # --- what the persona perceives (read by the graph's perceive node) ---------------------
    def latest_visual(self) -> str | None:
        """The latest screen description, if any."""
        return self.screen.latest_text if self.screen is not None else None

    def latest_affect(self) -> dict[str, Any] | None:
        """The user's latest affect from the camera: {"emotion", "attention", ...}."""
        return self.face.latest_affect()

    async def fresh_visual(self, timeout_s: float) -> str | None:
        """A screen description newer than now, waiting at most timeout_s (a pending frame is
        described at once, skipping the VLM interval)."""
        if self.screen is None:
            return None
        return await self.screen.fresh(timeout_s)

    def response_active(self) -> bool:
        """A reply is being generated, or its audio is still playing on the client."""
        r = self.response
        return r is not None and not r.finished

    def barge_in(self) -> None:
        """The user started talking over the reply: stop it now, without waiting."""
        r = self.response
        if r is not None and r.task is not None and not r.task.done() and not r.finished:
            self.log.info("barge_in", response_id=r.id)
            r.task.cancel()

    # --- face and voice analysis --------------------------------------------------------
    async def on_face_landmarks(self, ev: p.FaceLandmarks) -> None:
        self._submit_landmarks(ev.landmarks, ev.blendshapes, ev.t_ms)

    async def on_face_frame(self, data: bytes) -> None:
        """Binary 0x04: the same landmarks as face.landmarks, at a fraction of the cost."""
        t_ms, points, blendshapes = p.parse_face_frame(data)
        self._submit_landmarks(points, blendshapes, t_ms)

    def _submit_landmarks(
        self,
        points: list[list[float]] | np.ndarray,
        blendshapes: dict[str, float] | None,
        t_ms: int,
    ) -> None:
        if self.paused:
            return
        try:
            self.face.submit_landmarks(points, blendshapes, t_ms)
        except InvalidFaceInput as e:
            raise p.ProtocolError(e.code, str(e)) from None

    async def _on_camera_frame(self, jpeg: bytes, t_ms: int | None) -> None:
        """Camera JPEGs: server-side landmarks, then the same tracker as face.landmarks."""
        if self.services.face is None:
            raise p.ProtocolError(
                "not_supported",
                "Camera frames need the server face model, which is disabled here "
                "(FACE_ENABLED=false); send face.landmarks instead.",
            )
        if self.services.modules.get("face") == "error":
            if not self._warned_face:  # a server problem, not bad input: say it once
                self._warned_face = True
                why = self.services.details.get("face", "the face model is unavailable")
                await self.error("face_unavailable", f"Camera frames are dropped: {why}")
            return
        if self.paused:
            return
        try:
            self.face.submit_camera(jpeg, t_ms or None)
        except InvalidFaceInput as e:
            raise p.ProtocolError(e.code, str(e)) from None

    def timeline_ms(self) -> float:
        """Now on the session timeline (the t_ms of stored analysis samples)."""
        return self._timeline_base_ms + (time.monotonic() - self._t0) * 1000

    async def _send_analysis(self, event: dict[str, Any]) -> None:
        await self.send(event, droppable=True)

    async def _save_samples(self, samples: list[Sample]) -> None:
        await self.services.store.add_samples(self.user_id, self.record.id, samples)

    async def close_perception(self) -> None:
        """Connection closing: finish voice analyses, store the face timeline, log stats."""
        await self.voice_analysis.drain()
        await self.face.close()

    # --- responses ----------------------------------------------------------------------
    async def start_turn(self, text: str, t0: float | None = None, source: str = "text") -> None:
        """Run one persona reply; a reply still streaming is cancelled first. A yes or no
        also answers the screen task's pending preview."""
        self.tasks.hear(text)
        await self.cancel_response()
        store = self.services.store
        if self.services.agent.llm is None:
            await store.add_message(self.user_id, self.record.id, self.persona.id, "user", text)
            await self.error("llm_not_configured", str(LLMNotConfigured()))
            return
        self._response_counter += 1
        resp = ActiveResponse(self._response_counter, text, t0 or time.monotonic())
        self.response = resp
        resp.task = asyncio.create_task(self._run_response(resp))

    async def cancel_response(self) -> None:
        r = self.response
        if r is None or r.task is None or r.task.done():
            return
        if not r.finished:  # once response.done is out, only its writes remain: let them land
            r.task.cancel()
        await asyncio.wait({r.task})

    def turn_context(self) -> TurnContext:
        return TurnContext(
            persona=self.persona,
            user_turns=self.user_turns,
            instructions=self.config["instructions"],
            temperature=self.config["temperature"],
            max_tokens=self.config["max_tokens"],
            perception=self.perception,
            vision_wait_s=getattr(self.settings, "vision_wait_s", 3.0),
        )

    async def _run_response(self, r: ActiveResponse) -> None:
        store = self.services.store
        self.log.info(
            "response_started", response_id=r.id, text=redact(r.user_text, self.settings.log_pii)
        )
        await self.send({"type": "response.created", "response_id": r.id})
        fmt = self.config["output_audio"]
        if fmt != "none" and self.services.tts is not None:
            r.speech = SpeechOut(
                self.services.tts,
                self.config["voice"] or self.persona.tts_voice,
                fmt,
                r.number,
                self.send_bytes,
                user_id=self.user_id,
            )
            r.speech_task = asyncio.create_task(r.speech.run())
        saved_user = asyncio.create_task(
            store.add_message(self.user_id, self.record.id, self.persona.id, "user", r.user_text)
        )
        ctx = self.turn_context()
        self.user_turns += 1
        finished: TurnFinished | None = None
        try:
            async for ev in self.services.agent.stream_turn(
                self.user_id, self.record.thread_id, r.user_text, ctx
            ):
                if isinstance(ev, TurnDelta):
                    if r.first_delta_at is None:
                        r.first_delta_at = time.monotonic()
                    r.sent.append(ev.text)
                    await self.send(
                        {"type": "response.text.delta", "response_id": r.id, "delta": ev.text}
                    )
                    await self.on_reply_delta(r, ev.text)
                else:
                    finished = ev
            await self.on_reply_text_done(r)
        except asyncio.CancelledError:
            await self._stop_speech(r)
            await self._finish(r, "cancelled", saved_user, None)
            raise
        except SlowConsumer:
            await self._stop_speech(r)
            await self._finish(r, "failed", saved_user, None)
        except LLMNotConfigured as e:
            await self._stop_speech(r)
            await self.error("llm_not_configured", str(e))
            await self._finish(r, "failed", saved_user, None)
        except openai.OpenAIError as e:
            self.log.warning("llm_failed", error=type(e).__name__)
            await self._stop_speech(r)
            await self.error("llm_error", llm_error_message(e))
            await self._finish(r, "failed", saved_user, None)
        except Exception:
            self.log.exception("response_failed")
            await self._stop_speech(r)
            await self.error("internal_error", "The reply failed because of a server error.")
            await self._finish(r, "failed", saved_user, None)
        else:
            await self._finish(r, "completed", saved_user, finished)

    async def on_reply_delta(self, r: ActiveResponse, delta: str) -> None:
        if r.speech is not None:
            r.speech.feed(delta)

    async def on_reply_text_done(self, r: ActiveResponse) -> None:
        """Text is complete: finish its audio, then stay active while the client plays it
        (so speech over the reply is a barge-in until the last word was heard)."""
        if r.speech is None or r.speech_task is None:
            r.generated_at = time.monotonic()
            return
        r.speech.finish()
        await r.speech_task
        r.generated_at = time.monotonic()
        r.first_audio_at = r.speech.first_audio_at
        await self._warn_tts(r.speech)
        await self.send(
            {
                "type": "response.audio.done",
                "response_id": r.id,
                "chunks": r.speech.seq,
                "duration_ms": round(r.speech.duration_ms),
            }
        )
        if r.first_audio_at is None:
            return
        left = r.speech.duration_ms / 1000 - (time.monotonic() - r.first_audio_at)
        if (r.played_ms or 0) >= r.speech.duration_ms - 100:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, left) + self.settings.playback_grace_ms / 1000):
                await r.playback_done.wait()

    async def _warn_tts(self, speech: SpeechOut) -> None:
        if speech.error:
            await self.warn("tts_failed", f"Reply audio stopped: {speech.error}")
        tts = self.services.tts
        if not self._warned_tts and getattr(tts, "degraded", False):
            self._warned_tts = True
            await self.warn(
                "tts_degraded",
                "The online voice service is unreachable; replies use the offline voice "
                f"(espeak-ng) for now. ({getattr(tts, 'degraded_reason', '')})",
            )

    async def _stop_speech(self, r: ActiveResponse) -> None:
        if r.speech_task is not None and not r.speech_task.done():
            r.speech_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await r.speech_task
        if r.speech is not None:
            r.first_audio_at = r.speech.first_audio_at

    def heard_text(self, r: ActiveResponse) -> str:
        """What the user got of a cancelled reply: the text of the audio they played, or
        all text sent when there was no audio or no playback report."""
        if r.speech is not None and r.speech.seq and r.played_ms is not None:
            return r.speech.heard_text(r.played_ms)
        return r.sent_text

    async def _finish(
        self,
        r: ActiveResponse,
        status: str,
        saved_user: asyncio.Task[Any],
        finished: TurnFinished | None,
    ) -> None:
        r.finished = True
        end = r.generated_at or time.monotonic()
        timings = {
            "ttft_ms": ms(r.first_delta_at, r.t0),
            "ttfa_ms": ms(r.first_audio_at, r.t0),
            "total_ms": ms(end, r.t0),
        }
        usage = finished.usage if finished else {}
        text = r.sent_text
        await self.send(
            {
                "type": "response.done",
                "response_id": r.id,
                "status": status,
                "text": text,
                "timings": timings,
                "usage": {
                    "input_tokens": usage.get("input_tokens", 0),
                    "output_tokens": usage.get("output_tokens", 0),
                },
            }
        )
        self.log.info("response_done", response_id=r.id, status=status, **timings)
        store = self.services.store
        await saved_user
        if status in ("cancelled", "failed"):
            if status == "cancelled":
                text = await self.settle_heard_text(r)
            await self.services.agent.record_interrupted(self.record.thread_id, r.user_text, text)
        if text:  # a silent plan stores no empty reply
            await store.add_message(
                self.user_id,
                self.record.id,
                self.persona.id,
                "assistant",
                text,
                timings=timings,
                interrupted=status == "cancelled",
            )
        await store.incr_usage(
            self.user_id,
            {
                "llm_calls": 1 if status != "failed" or usage else 0,
                "input_tokens": usage.get("input_tokens", 0),
                "output_tokens": usage.get("output_tokens", 0),
            },
        )

    async def settle_heard_text(self, r: ActiveResponse) -> str:
        """After a cancel, give the client a moment to report how much it played."""
        if r.speech is not None and r.speech.seq and r.played_ms is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.played_report_wait_ms / 1000):
                    await r.played.wait()
        return self.heard_text(r)


def aware(t: datetime) -> datetime:
    """Stored times may come back naive (UTC)."""
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def ms(t: float | None, t0: float) -> int | None:
    return None if t is None else round((t - t0) * 1000)


def llm_error_message(e: openai.OpenAIError) -> str:
    if isinstance(e, openai.APIConnectionError):
        return (
            "The language model endpoint could not be reached (after 3 tries). "
            "Check LLM_BASE_URL and that the model server is running."
        )
    if isinstance(e, openai.AuthenticationError):
        return "The language model endpoint rejected the API key (check LLM_API_KEY)."
    if isinstance(e, openai.APIStatusError):
        return f"The language model endpoint answered HTTP {e.status_code}."
    return f"The language model call failed ({type(e).__name__})."
