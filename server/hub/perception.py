"""What a session perceives: voice input, face, voice analysis and screen frames, and the
hooks the agent's perceive node reads (latest_visual, latest_affect, fresh_visual)."""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from server.hub import protocol as p
from server.hub.core import SessionCore, aware
from server.pipelines.audio import VoiceInput
from server.pipelines.face import FaceConfig, FacePipeline
from server.pipelines.face_input import InvalidFaceInput
from server.pipelines.final_transcript import Utterance
from server.pipelines.vision import ScreenPipeline
from server.pipelines.voice_analysis import VoiceAnalysis
from server.providers.stt import Transcript
from server.store.base import Sample, utcnow

if TYPE_CHECKING:
    import numpy as np


class Perception(SessionCore):
    """Mixed into Session: the perception pipelines of one session."""

    tasks: Any  # the user's screen task runner (server/tasks), set by Session
    preemptive: Any  # the reply started before the turn ended (hub/preemptive.py)

    def init_perception(self) -> None:
        services = self.services
        self.perception: Any = self  # the agent's perceive node reads latest_* below
        self.voice_in: VoiceInput | None = None
        if services.vad is not None:
            self.voice_in = VoiceInput(self, services.vad, services.stt)  # type: ignore[arg-type]
            self.voice_in.set_turn_detection(self.config["turn_detection"])
        # Timeline clock for stored samples: ms since the session started (a resumed
        # session continues its timeline instead of restarting at 0).
        self._t0 = time.monotonic()
        self._timeline_base_ms = max(
            0.0, (utcnow() - aware(self.record.started_at)).total_seconds()
        )
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
            emit=self._emit_analysis,
            save_samples=self._save_samples,
            timeline_offset_ms=self._timeline_base_ms,
            logger=self.log,
        )
        self.screen: ScreenPipeline | None = None
        self._warned_vision = False
        if services.screen_describer is not None:
            self.screen = ScreenPipeline(
                services.screen_describer,
                self.user_id,
                self._emit_analysis,
                self.error,
                min_interval_s=self.settings.vlm_min_interval_s,
                change_threshold=self.settings.screen_change_threshold,
                spawn=self.spawn,
                logger=self.log,
            )
            if services.screen_capture is not None:
                services.screen_capture.subscribe(self.screen, lambda: not self.paused)

    def on_config_changed(self, changes: dict[str, Any]) -> None:
        """Pipelines that depend on session settings follow them."""
        if self.voice_in is not None and "turn_detection" in changes:
            self.voice_in.set_turn_detection(self.config["turn_detection"])
            self.spawn(self.preemptive.discard("turn detection changed"))

    async def config_applied(self) -> None:
        """Push-to-talk switched on mid-speech: the speech announced gets its stop."""
        if self.voice_in is not None and self.voice_in.push_to_talk:
            await self.voice_in.end_speech()

    # --- voice in -----------------------------------------------------------------------
    async def mic_audio(self, payload: bytes) -> None:
        """PCM16 LE mono 16 kHz from the client's microphone."""
        if self.voice_in is None:
            raise p.ProtocolError("not_supported", "Audio input is not enabled on this server.")
        if (why := self.voice_in.check_frame(payload)) is not None:
            raise p.ProtocolError("invalid_audio", why)
        if self.paused:
            return
        if problem := self.voice_in.feed(payload):
            await self.error("audio_overrun", problem)

    async def commit_audio(self) -> str | None:
        """End the user's spoken turn now (push-to-talk): its item id, None if no audio."""
        if self.voice_in is None:
            raise p.ProtocolError("not_supported", "Audio input is not enabled on this server.")
        return await self.voice_in.commit()

    async def clear_audio(self) -> None:
        """Forget the user's audio not yet committed."""
        if self.voice_in is None:
            raise p.ProtocolError("not_supported", "Audio input is not enabled on this server.")
        await self.voice_in.clear()

    # the reply's own audio, for the echo canceller (server/turns/echo.py)
    def reply_audio_tap(self, number: int) -> Callable[[bytes, int], None] | None:
        return self.voice_in.reply_audio_tap(number) if self.voice_in is not None else None

    def reply_playing(self, number: int) -> None:
        if self.voice_in is not None:
            self.voice_in.playback_started(number)

    def reply_cut(self, number: int) -> None:
        if self.voice_in is not None:
            self.voice_in.reply_stopped(number)

    def stt_language(self) -> str | None:
        lang = self.settings.stt_language or self.persona.language
        return None if lang == "auto" else lang.split("-")[0]

    async def on_utterance(self, utt: Utterance, transcript: Transcript) -> None:
        """Hook: a final user utterance (voice analysis uses it)."""
        self.voice_analysis.submit(utt, transcript)  # spawned: the turn does not wait

    # --- images -------------------------------------------------------------------------
    async def image(self, source: str, jpeg: bytes, t_ms: int | None) -> None:
        if source == "camera":
            await self._on_camera_frame(jpeg, t_ms)
        else:
            await self._on_screen_frame(jpeg, t_ms)

    async def image_b64(self, source: str, jpeg_b64: str, t_ms: int | None) -> None:
        try:
            data = base64.b64decode(jpeg_b64, validate=True)
        except (binascii.Error, ValueError):
            raise p.ProtocolError("invalid_image", "jpeg_b64 is not valid base64.") from None
        await self.image(source, data, t_ms)

    async def show_screen(self, image: bytes) -> None:
        """An image the user attached to a message: described before the turn starts
        (waiting at most VISION_WAIT_S), so the reply can talk about it."""
        await self._on_screen_frame(image, None)
        if self.screen is not None and not self.paused:
            await self.screen.fresh(self.settings.vision_wait_s)

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

    # --- face -------------------------------------------------------------------------
    def submit_landmarks(
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

    # --- timeline and storage -------------------------------------------------------------
    def timeline_ms(self) -> float:
        """Now on the session timeline (the t_ms of stored analysis samples)."""
        return self._timeline_base_ms + (time.monotonic() - self._t0) * 1000

    async def _send_analysis(self, event: dict[str, Any]) -> None:
        await self.events.analysis(event, droppable=True)

    async def _emit_analysis(self, event: dict[str, Any]) -> None:
        await self.events.analysis(event)

    async def _save_samples(self, samples: list[Sample]) -> None:
        await self.services.store.add_samples(self.user_id, self.record.id, samples)

    async def close_perception(self) -> None:
        """Connection closing: finish voice analyses, store the face timeline, log stats."""
        await self.voice_analysis.drain()
        await self.face.close()

    async def on_ending(self) -> None:
        """Hook: pipelines flush their timelines before the session ends (and speech in
        progress that was announced gets its stop)."""
        if self.voice_in is not None:
            await self.voice_in.end_speech()
        await self.voice_analysis.drain()
        await self.face.flush()
