"""What every part of Services shares: the modules' states (GET /health, the `server.status`
event) and its background tasks. The parts are mixins, one per area: services_mcp.py,
services_vision.py (screen, desktop mode, face), services_voice.py (TTS, VAD, STT, turn
model); server/services.py puts them together and starts them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal

from server.config import Settings
from server.logging import get_logger
from server.status import StatusBoard
from server.store import Store

log = get_logger("server.services")

ModuleStatus = Literal["ready", "loading", "error", "disabled", "degraded"]


class ServicesBase:
    settings: Settings
    store: Store
    modules: dict[str, ModuleStatus]
    details: dict[str, str]
    status: StatusBoard
    _background: set[asyncio.Task[Any]]

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
