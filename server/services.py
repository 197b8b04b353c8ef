"""Everything a request or a session needs, built once at start-up and closed at shutdown."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from server.agent.graph import Agent
from server.agent.memory import LongTermMemory
from server.config import Settings, secret
from server.logging import get_logger
from server.loopmon import LoopLagMonitor
from server.personas import PersonaLibrary
from server.providers.llm import make_chat_model
from server.store import Store, make_store

log = get_logger(__name__)

ModuleStatus = Literal["ready", "loading", "error", "disabled", "degraded"]
REQUIRED_MODULES = ("agent", "store")


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
        }
        self.details: dict[str, str] = {}
        if not settings.llm_configured:
            self.details["llm"] = "not configured: set LLM_BASE_URL / LLM_API_KEY"
        self.personas = PersonaLibrary(settings.personas_dir).load()
        self.store: Store = make_store(
            data_dir=settings.data_dir,
            mongodb_uri=secret(settings.mongodb_uri),
            mongodb_db=settings.mongodb_db,
        )
        self.memory = LongTermMemory(settings)
        self.agent: Agent
        self._background: set[asyncio.Task[Any]] = set()
        self.loop_lag = LoopLagMonitor()

    def set_status(self, module: str, status: ModuleStatus, detail: str = "") -> None:
        self.modules[module] = status
        if detail:
            self.details[module] = detail
        else:
            self.details.pop(module, None)

    def background(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def start(self) -> None:
        self.loop_lag.start()
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            await self.store.open()
            self.set_status("store", "ready")
        except Exception as e:
            self.set_status("store", "error", f"{type(e).__name__}: {e}")
            log.error("store_unavailable", error=self.details["store"])
            raise
        await self.memory.start()
        self.set_status("memory", self.memory.status, self.memory.detail)  # type: ignore[arg-type]
        self.agent = Agent(make_chat_model(self.settings), self.memory, self.store.checkpointer())
        self.set_status("agent", "ready")
        log.info("services_started", modules=self.modules)

    async def close(self) -> None:
        await self.loop_lag.stop()
        for t in list(self._background):
            t.cancel()
        await self.memory.close()
        await self.store.close()

    def health(self) -> tuple[bool, dict[str, str]]:
        ok = all(self.modules.get(m) == "ready" for m in REQUIRED_MODULES)
        return ok, dict(self.modules)
