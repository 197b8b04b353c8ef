"""Everything a request or a session needs, built once at start-up and closed at shutdown."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from server.agent.approval_fleet import ApprovalFleet
from server.agent.approvals import ApprovalWaiters
from server.agent.graph import Agent
from server.agent.mcp import McpConfigError, McpManager, agent_tools, load_config
from server.agent.memory import LongTermMemory
from server.agent.memory.cleanup import run_periodically
from server.agent.state import Perception
from server.agent.tools import ToolEnv, ToolRegistry, default_registry
from server.config import Settings, secret
from server.hub.limits import UserLimits
from server.hub.live import DesktopGlance, LiveSessions
from server.hub.liveness import SessionLiveness, instance_id
from server.hub.takeover import Takeovers
from server.initiative.data import load as load_proactive
from server.initiative.live import InitiativeHub
from server.logging import get_logger
from server.loopmon import LoopLagMonitor
from server.models.ensure import ensure_model
from server.models.manager import locate
from server.personas import PersonaLibrary
from server.pipelines.desktop_capture import ScreenCapture
from server.pipelines.screen_describer import DescriptionCache, ScreenDescriber
from server.providers.face import FaceLandmarkerProvider, FaceModelUnavailable
from server.providers.llm import close_chat_model, make_chat_model, make_chat_stream
from server.providers.screen_capture import CaptureUnavailable, monitor_at
from server.providers.stt import STTError, WhisperSTT
from server.providers.stt_remote import RemoteSTT
from server.providers.tts.base import TTSProvider
from server.providers.vad import SileroVAD, VADUnavailable
from server.providers.vlm import VisionClient
from server.reminders import ReminderWatchers
from server.status import StatusBoard
from server.store import Store, make_store
from server.tasks.desktop import DesktopUnavailable
from server.tasks.desktop import probe as desktop_probe
from server.tasks.runner import TaskRunners
from server.turns.model import SmartTurnModel, TurnModelUnavailable

log = get_logger(__name__)

ModuleStatus = Literal["ready", "loading", "error", "disabled", "degraded"]
REQUIRED_MODULES = ("agent", "store")


def freeze_heap() -> None:
    """Move everything alive after start-up (imported libraries, models, the compiled graph)
    out of the garbage collector's reach, once per process. Without this every full
    collection walks all of it with the loop stopped: 160-185 ms pauses under load
    (bench/perception.py), 35 ms after. Frozen objects are never collected, which is what
    start-up objects are for; a second app in the same process (tests) leaves it be."""
    if gc.get_freeze_count():
        return
    gc.collect()
    gc.freeze()


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.modules: dict[str, ModuleStatus] = {
            "agent": "loading",
            "llm": "ready" if settings.llm_configured else "disabled",
            "vlm": "disabled",
            "tts": "disabled",
            "stt": "disabled",
            "store": "loading",
            "memory": "loading",
            "face": "loading" if settings.face_enabled else "disabled",
        }
        self.details: dict[str, str] = {}
        self.status = StatusBoard()  # pushes changes to sessions (`server.status`)
        if not settings.llm_configured:
            self.details["llm"] = "not configured: set LLM_BASE_URL / LLM_API_KEY"
        self.personas = PersonaLibrary(settings.personas_dir).load()
        self.store: Store = make_store(
            data_dir=settings.data_dir,
            mongodb_uri=secret(settings.mongodb_uri),
            mongodb_db=settings.mongodb_db,
            sqlite_synchronous=settings.sqlite_synchronous,
        )
        self.instance_id = instance_id(settings.instance_id)
        self.liveness = SessionLiveness(self.store, self.instance_id, settings.session_heartbeat_s)
        self.takeovers = Takeovers(self.store, self.instance_id, settings.session_takeover_check_s)
        self.memory = LongTermMemory(settings, self.store, count_usage=self.store.incr_usage)
        self.agent: Agent
        self.vad: SileroVAD | None = None
        self.turn_model: SmartTurnModel | None = None
        self._turn_model_loading = False
        self.stt: WhisperSTT | RemoteSTT | None = None
        self.tts: TTSProvider | None = None
        # One MediaPipe graph for all sessions; its single worker thread serialises frames
        # so waiting camera frames never occupy the default pool that VAD/STT rely on.
        self.face: FaceLandmarkerProvider | None = None
        self.face_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="face")
        self._background: set[asyncio.Task[Any]] = set()
        self.loop_lag = LoopLagMonitor()
        self.reminder_watchers = ReminderWatchers()
        self.user_limits = UserLimits(
            settings.ws_max_sessions_per_user, settings.ws_user_max_messages_per_s
        )
        self.live_sessions = LiveSessions()  # user -> open sessions' perception (REST uses it)
        self._init_vision()
        self.tasks = TaskRunners(self.store, self.vision, settings)
        self.mcp: McpManager | None = None  # tools from MCP servers (MCP_CONFIG)
        self.approval_waiters = ApprovalWaiters()  # turns waiting for the user's decision
        self.approval_fleet = (  # decisions given on another replica
            ApprovalFleet(self.store, self.instance_id, settings.approval_poll_s)
            if settings.replica_mode == "multi"
            else None
        )
        # proactive speech: prompts and schedules from data files, live sessions per user
        self.initiative = InitiativeHub(load_proactive(settings.proactive_dir))

    async def _start_mcp(self) -> None:
        """Connect to the MCP servers in the background: a slow or dead server never holds
        start-up or a turn (its tools are offered once it answers)."""
        s = self.settings
        if s.mcp_config is None:
            return
        try:
            servers = load_config(s.mcp_config)
        except McpConfigError as e:
            self.set_status("mcp", "error", str(e))
            return
        self.mcp = McpManager(
            servers,
            call_timeout_s=s.mcp_call_timeout_s,
            connect_timeout_s=s.mcp_connect_timeout_s,
            reconnect_s=s.mcp_reconnect_s,
            reconnect_max_s=s.mcp_reconnect_max_s,
        )
        self.mcp.listeners.append(self._mcp_changed)
        self.mcp.start()
        # Give the servers one connection attempt (bounded by MCP_CONNECT_TIMEOUT_S) so the
        # first turns have their tools; a server that is down then is skipped (reported in
        # /health/details), retried in the background, and its tools join when it is up.
        await self.mcp.first_attempts(s.mcp_connect_timeout_s)
        self._mcp_status()

    def _mcp_changed(self) -> None:
        """An MCP server connected or went down: status now, and the agent offers exactly
        the connected servers' tools from its next model call."""
        self._mcp_status()
        agent = getattr(self, "agent", None)
        if agent is None or self.mcp is None:
            return
        offered = {t.name for t in agent.tools}
        wanted = {t.name for t in self._tools()}
        if offered != wanted:
            agent.use_tools(self._tools())
            log.info("mcp_tools_changed", tools=len(wanted))

    def _mcp_status(self) -> None:
        if self.mcp is None:
            return
        st = self.mcp.status()
        down = sorted(n for n, v in st.items() if v["status"] != "connected")
        detail = "; ".join(
            f"{n}: {v['status']} ({v['detail']}"
            + (f"; retry in {v['retry_in_s']:g} s)" if v["retry_in_s"] is not None else ")")
            for n, v in sorted(st.items())
        )
        self.set_status("mcp", "degraded" if down else "ready", detail)

    def set_status(self, module: str, status: ModuleStatus, detail: str = "") -> None:
        self.modules[module] = status
        if detail:
            self.details[module] = detail
        else:
            self.details.pop(module, None)
        self.status.notify()

    def _reporter(self, module: str) -> Callable[[str, str], None]:
        return lambda status, detail: self.set_status(module, status, detail)  # type: ignore[arg-type]

    def status_event(self) -> dict[str, Any]:
        """The `server.status` event: every module's state, why, and download progress."""
        return {
            "type": "server.status",
            "modules": dict(self.modules),
            "details": dict(self.details),
            "progress": dict(self.status.progress),
        }

    def background(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def start(self) -> None:
        # asyncio.to_thread's default pool has min(32, cpus + 4) threads: 6 here, which a few
        # blocking mem0 saves or STT decodes exhaust. Size it by setting.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(self.settings.worker_threads, thread_name_prefix="worker")
        )
        self.loop_lag.start()
        self.status.bind()
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            await self.store.open()
            self.set_status("store", "ready")
        except Exception as e:
            self.set_status("store", "error", f"{type(e).__name__}: {e}")
            log.error("store_unavailable", error=self.details["store"])
            raise
        await self.liveness.start()  # sessions a crash left "active" become "interrupted"
        self.takeovers.start()
        await self.memory.start()
        self.set_status("memory", self.memory.status, self.memory.detail)  # type: ignore[arg-type]
        await self._start_mcp()
        self.agent = self._make_agent()
        self._start_memory_cleanup()
        self.set_status("agent", "ready")
        await self._start_voice()
        self._start_face()
        await self._start_screen_capture()
        self._start_desktop()
        freeze_heap()
        log.info("services_started", modules=self.modules)

    def _make_agent(self) -> Agent:
        s = self.settings

        def tool_env(user_id: str, perception: Perception | None) -> ToolEnv:
            return ToolEnv(user_id, s, self.store, self.memory, self.reminder_watchers, perception)

        return Agent(
            make_chat_model(s),
            self.memory,
            self.store.checkpointer(),
            history_messages=s.history_messages,
            tools=self._tools(),
            make_env=tool_env,
            tool_mode=s.llm_tools,
            max_tool_rounds=s.agent_max_tool_rounds,
            tool_timeout_s=s.agent_tool_timeout_s,
            chat=make_chat_stream(s),
        )

    def _tools(self) -> ToolRegistry:
        registry = default_registry()
        for tool in agent_tools(self.mcp) if self.mcp is not None else []:
            registry.register(tool)
        return registry

    def _start_memory_cleanup(self) -> None:
        s = self.settings
        if self.memory.tiered and s.memory_cleanup_interval_s > 0:
            self.background(
                run_periodically(self.memory, s.memory_old_after_days, s.memory_cleanup_interval_s)
            )

    def perception_for(self, user_id: str) -> Perception | None:
        """What REST turns perceive: the user's open session, else (desktop mode) this
        machine's screen, else nothing."""
        live = self.live_sessions.perception_for(user_id)
        if live is not None:
            return live
        if self.screen_capture is not None and self.screen_describer is not None:
            return DesktopGlance(self.screen_describer, user_id, self.settings.screen_monitor)
        return None

    # --- screen vision ----------------------------------------------------------------------
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

    # --- face -----------------------------------------------------------------------------
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

    # --- voice ----------------------------------------------------------------------------
    def voice_path(self, user_id: str) -> Path:
        """Where a user's voice reference (for cloning) lives."""
        return self.settings.data_dir / "voices" / f"{user_id}.wav"

    async def load_voice(self, user_id: str | None) -> bytes | None:
        path = self.voice_path(user_id or "local")
        return await asyncio.to_thread(path.read_bytes) if path.is_file() else None

    def make_tts(self) -> TTSProvider:
        from server.providers.tts.espeak import EspeakTTS
        from server.providers.tts.fallback import FallbackTTS

        s = self.settings
        offline = EspeakTTS()
        primary: TTSProvider
        if s.tts_provider == "espeak":
            return offline
        if s.tts_provider == "fish":
            from server.providers.tts.fish import FishSpeechTTS

            if not s.fish_speech_url:
                raise ValueError("TTS_PROVIDER=fish needs FISH_SPEECH_URL")
            primary = FishSpeechTTS(
                s.fish_speech_url, secret(s.fish_speech_api_key), reference_loader=self.load_voice
            )
        else:
            from server.providers.tts.edge import EdgeTTS

            primary = EdgeTTS()
        if s.tts_fallback:
            primary = FallbackTTS(
                primary,
                offline,
                on_degraded=lambda why: self.set_status("tts", "degraded", why),
                on_recovered=lambda: self.set_status("tts", "ready"),
            )
        if s.tts_cache_max_bytes <= 0:
            return primary
        from server.providers.tts.cache import CachedTTS

        return CachedTTS(
            primary,
            ttl_s=s.tts_cache_ttl_s,
            max_bytes=s.tts_cache_max_bytes,
            scope=self._voice_reference_scope if s.tts_provider == "fish" else None,
            on_lookup=self._count_tts_lookup,
        )

    def _voice_reference_scope(self, user_id: str | None) -> str:
        """A cloned voice's audio depends on the user's reference (and its version)."""
        path = self.voice_path(user_id or "local")
        try:
            return f"{user_id}:{path.stat().st_mtime_ns}"
        except OSError:
            return f"{user_id}:none"

    def _count_tts_lookup(self, user_id: str | None, hit: bool) -> None:
        name = "tts_cache_hits" if hit else "tts_cache_misses"
        self.background(self.store.incr_usage(user_id or "local", {name: 1}))

    async def _start_voice(self) -> None:
        try:
            self.tts = self.make_tts()
            self.set_status("tts", "ready")
        except (ValueError, OSError) as e:
            self.set_status("tts", "error", str(e))
        vad_path = await ensure_model(self.settings, "vad", "stt", self.status, lambda st, d: None)
        try:
            if vad_path is None:
                raise VADUnavailable(locate(self.settings, "vad").message())
            self.vad = await asyncio.to_thread(SileroVAD, vad_path)
        except VADUnavailable as e:
            self.set_status("stt", "error", f"VAD: {e}")
            return
        s = self.settings
        if not s.stt_enabled:
            self.set_status("stt", "disabled", "STT_ENABLED=false: speech is not transcribed")
            return
        if s.stt_provider == "openai":
            self._start_remote_stt()
            return
        self.set_status("stt", "loading")
        state = locate(s, "stt")
        # Built now (sessions opened while the model downloads hold it), loaded once the
        # files are there: an explicit or installed folder, never a hub download by name.
        self.stt = WhisperSTT(
            state.path,
            device=s.stt_device,
            compute_type=s.stt_compute_type,
            cpu_threads=s.stt_cpu_threads,
            window_min_s=s.stt_window_min_s or None,
        )
        self.background(self._load_stt(local=True))

    def turn_model_now(self) -> SmartTurnModel | None:
        """The end-of-turn model, loaded in the background on first use (start-up never
        waits for it); until then, or if it cannot load, semantic turns decide on the words
        and the cap."""
        if self.turn_model is None and not self._turn_model_loading:
            self._turn_model_loading = True
            self.background(self.load_turn_model())
        return self.turn_model

    async def load_turn_model(self) -> None:
        self._turn_model_loading = True
        try:
            self.turn_model = await asyncio.to_thread(SmartTurnModel)
        except TurnModelUnavailable as e:
            log.warning("turn_model_unavailable", error=str(e))

    def _start_remote_stt(self) -> None:
        s = self.settings
        if not s.stt_base_url:
            self.set_status(
                "stt", "error", "STT_PROVIDER=openai needs STT_BASE_URL (an OpenAI-compatible /v1)"
            )
            return
        self.stt = RemoteSTT(
            s.stt_base_url,
            secret(s.stt_api_key),
            s.stt_remote_model,
            timeout_s=s.stt_timeout_s,
            max_concurrency=s.stt_max_concurrency,
        )
        self.set_status("stt", "loading")
        self.background(self._load_stt())

    async def _load_stt(self, *, local: bool = False) -> None:
        """Load the STT model; a local one is first found or downloaded (with progress)."""
        assert self.stt is not None
        if local:
            report = self._reporter("stt")
            if await ensure_model(self.settings, "stt", "stt", self.status, report) is None:
                return
        try:
            await self.stt.aload()
            self.set_status("stt", "ready")
        except STTError as e:
            self.set_status("stt", "error", str(e))
            log.warning("stt_unavailable", error=str(e))
        except Exception as e:  # a broken install: a missing module, a bad native library
            self._broken("stt", e, "STT_PROVIDER=openai with STT_BASE_URL")

    def _broken(self, module: str, exc: Exception, instead: str) -> None:
        """A module whose code cannot run here: say so in words (the traceback goes to the
        log) rather than stay `loading` forever."""
        self.set_status(
            module,
            "error",
            f"the {module} module cannot start on this installation ({type(exc).__name__}); "
            f"reinstall DesktopMate-Plus, or use {instead}",
        )
        log.exception(f"{module}_module_failed")

    async def close(self) -> None:
        await self.loop_lag.stop()
        if self.mcp is not None:
            await self.mcp.close()
        await self.liveness.close()
        await self.takeovers.close()
        for t in list(self._background):
            t.cancel()
        if self.tts is not None:
            await self.tts.close()
        if isinstance(self.stt, RemoteSTT):
            await self.stt.aclose()
        if self.screen_capture is not None:
            await self.screen_capture.close()
        await self.tasks.close()
        if self.screen_describer is not None:
            await self.screen_describer.aclose()
        if self.face is not None:
            await asyncio.get_running_loop().run_in_executor(self.face_executor, self.face.close)
        self.face_executor.shutdown(wait=False, cancel_futures=True)
        await self.memory.close()
        if hasattr(self, "agent"):
            await close_chat_model(self.agent.llm)
            if self.agent.chat is not None:
                await self.agent.chat.aclose()
        await self.store.close()

    def health(self) -> tuple[bool, dict[str, str]]:
        """Unhealthy when a required module is not ready, or when any module that is
        configured is in error. `disabled` (not configured), `loading` and `degraded` (a
        fallback serves) are healthy: the features that need them say so themselves."""
        self._mcp_status()
        required = all(self.modules.get(m) == "ready" for m in REQUIRED_MODULES)
        ok = required and "error" not in self.modules.values()
        return ok, dict(self.modules)
