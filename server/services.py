"""Everything a request or a session needs, built once at start-up and closed at shutdown.

Its parts, one mixin per area: services_base.py (module states, background tasks),
services_mcp.py, services_vision.py, services_voice.py."""

from __future__ import annotations

import asyncio
import gc
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from server.agent.approval_fleet import ApprovalFleet
from server.agent.approvals import ApprovalWaiters
from server.agent.graph import Agent
from server.agent.mcp import McpManager
from server.agent.memory import LongTermMemory
from server.agent.memory.cleanup import run_periodically
from server.agent.state import Perception
from server.agent.tools import ToolEnv
from server.config import Settings, secret
from server.hub.limits import UserLimits
from server.hub.live import LiveSessions
from server.hub.liveness import SessionLiveness, instance_id
from server.hub.takeover import Takeovers
from server.initiative.data import load as load_proactive
from server.initiative.live import InitiativeHub
from server.loopmon import LoopLagMonitor
from server.personas import PersonaLibrary
from server.providers.face import FaceLandmarkerProvider
from server.providers.llm import close_chat_model, make_chat_model, make_chat_stream
from server.providers.stt import WhisperSTT
from server.providers.stt_remote import RemoteSTT
from server.providers.tts.base import TTSProvider
from server.providers.vad import SileroVAD
from server.reminders import ReminderWatchers
from server.services_base import ModuleStatus, log
from server.services_mcp import McpServices
from server.services_vision import VisionServices
from server.services_voice import VoiceServices
from server.status import StatusBoard
from server.store import Store, make_store
from server.tasks.runner import TaskRunners
from server.turns.model import SmartTurnModel

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


class Services(McpServices, VisionServices, VoiceServices):
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
            mongodb_timeout_s=settings.mongodb_timeout_s,
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
        self.tasks.start()  # REPLICA_MODE=multi: running screen tasks' leases
        self.takeovers.start()
        await self.memory.start()
        self._memory_changed()
        if self.memory.status == "error" and self.memory.remote:
            self.background(self.memory.reopen(self._memory_changed))  # no restart needed
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

    def _memory_changed(self) -> None:
        """The status follows memory's own; the cleanup job starts once its tiers are up
        (at start-up, or when a vector server that was down answers)."""
        self.set_status("memory", self.memory.status, self.memory.detail)  # type: ignore[arg-type]
        if self.memory.status == "ready" and hasattr(self, "agent"):
            self._start_memory_cleanup()

    def _start_memory_cleanup(self) -> None:
        s = self.settings
        if self.memory.tiered and s.memory_cleanup_interval_s > 0:
            self.background(
                run_periodically(self.memory, s.memory_old_after_days, s.memory_cleanup_interval_s)
            )

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
