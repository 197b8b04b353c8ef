"""The screen and the camera: the shared VLM client and description cache, desktop mode's
screen capture (SCREEN_CAPTURE) and actions (TASK_DESKTOP_EXECUTE), and the server-side face
model. Mixed into Services."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from server.agent.state import Perception
from server.hub.live import DesktopGlance, LiveSessions
from server.models.ensure import ensure_model
from server.pipelines.desktop_capture import ScreenCapture
from server.pipelines.screen_describer import DescriptionCache, ScreenDescriber
from server.providers.face import FaceLandmarkerProvider, FaceModelUnavailable
from server.providers.screen_capture import CaptureUnavailable, monitor_at
from server.providers.vlm import VisionClient
from server.services_base import ServicesBase, log
from server.tasks.desktop import DesktopUnavailable
from server.tasks.desktop import probe as desktop_probe


class VisionServices(ServicesBase):
    face: FaceLandmarkerProvider | None
    face_executor: ThreadPoolExecutor
    live_sessions: LiveSessions

    def perception_for(self, user_id: str) -> Perception | None:
        """What REST turns perceive: the user's open session, else (desktop mode) this
        machine's screen, else nothing."""
        live = self.live_sessions.perception_for(user_id)
        if live is not None:
            return live
        if self.screen_capture is not None and self.screen_describer is not None:
            return DesktopGlance(self.screen_describer, user_id, self.settings.screen_monitor)
        return None

    def _init_vision(self) -> None:
        """A shared VLM client and description cache; sessions get a pipeline only when set."""
        s = self.settings
        self.vision: VisionClient | None = None
        self.screen_describer: ScreenDescriber | None = None
        self.screen_capture: ScreenCapture | None = None
        self.vision_cache = DescriptionCache(
            s.vision_cache_size, s.screen_change_threshold, ttl_s=s.vision_cache_ttl_s
        )
        if s.vlm_configured:
            base_url, key, model = s.vlm_endpoint()
            self.vision = VisionClient(
                base_url or "https://api.openai.com/v1", key or "", model, s.vlm_timeout_s
            )
            self.screen_describer = ScreenDescriber(
                self.vision, self.vision_cache, self.store.incr_usage
            )
            self.set_status("vlm", "ready")
        else:
            why = "VLM_ENABLED=false" if not s.vlm_enabled else "set VLM_BASE_URL or LLM_BASE_URL"
            self.set_status("vlm", "disabled", f"not configured: {why}")
        if s.screen_capture:
            self.modules["screen_capture"] = "loading"
            self.screen_capture = ScreenCapture(
                s.screen_capture_interval_s,
                s.screen_monitor,
                self._capture_status,
            )

    def _capture_status(self, status: str, detail: str) -> None:
        self.set_status("screen_capture", "ready" if status == "ready" else "error", detail)

    async def _start_screen_capture(self) -> None:
        """Desktop mode: probe the display once; without one, say why and carry on."""
        cap = self.screen_capture
        if cap is None:
            return
        if self.settings.auth_configured:
            self.screen_capture = None
            self.set_status(
                "screen_capture",
                "error",
                "SCREEN_CAPTURE is for desktop (local) mode: with auth configured, this "
                "machine's screen would be shown to every user",
            )
            return
        try:
            what = await cap.start()
        except CaptureUnavailable as e:
            self.screen_capture = None
            self.set_status("screen_capture", "error", str(e))
            log.warning("screen_capture_unavailable", error=str(e))
            return
        self.set_status("screen_capture", "ready", what)

    def _start_desktop(self) -> None:
        """Desktop mode (TASK_DESKTOP_EXECUTE): say whether this server can act on its own
        display (pynput's backend; in the binary, whether it was bundled)."""
        if not self.settings.task_desktop_execute:
            return
        self.modules["desktop"] = "loading"
        self.background(self._probe_desktop())

    async def _probe_desktop(self) -> None:
        try:
            monitor = await asyncio.to_thread(monitor_at, self.settings.screen_monitor)
            what = await asyncio.to_thread(desktop_probe, monitor)
        except (CaptureUnavailable, DesktopUnavailable) as e:
            self.set_status("desktop", "error", str(e))
            log.warning("desktop_unavailable", error=str(e))
            return
        self.set_status("desktop", "ready", what)

    def _start_face(self) -> None:
        """Server-side face model for camera frames: found, or downloaded, in the background."""
        if not self.settings.face_enabled:
            self.set_status("face", "disabled", "FACE_ENABLED=false: camera frames are refused")
            return
        self.set_status("face", "loading")
        self.background(self._load_face())

    async def _load_face(self) -> None:
        s = self.settings
        path = await ensure_model(s, "face", "face", self.status, self._reporter("face"))
        if path is None:
            return
        provider = FaceLandmarkerProvider(path, path.parent, s.face_model_url)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.face_executor, provider.load)
        except (FaceModelUnavailable, RuntimeError) as e:
            self.set_status("face", "error", str(e))
            log.warning("face_model_unavailable", error=str(e))
            return
        except Exception as e:  # a broken install: a missing module, a bad native library
            self._broken("face", e, "FACE_ENABLED=false")
            return
        self.face = provider
        self.set_status("face", "ready")

    def face_model_status(self, status: str, detail: str) -> None:
        """Pipelines report what a lazy (re)load on a real frame found."""
        if status == "ready" and self.modules.get("face") != "ready":
            self.set_status("face", "ready")
        elif status == "error" and self.modules.get("face") != "error":
            self.set_status("face", "error", detail)
