"""Live sessions by user, so REST (POST /v1/chat) perceives what the user's open session
perceives; and a one-shot look at this machine's screen for desktop mode with no session."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from analysis.screen import InvalidImage
from server.agent.state import Perception
from server.pipelines.screen_describer import PreparedFrame, ScreenDescriber
from server.pipelines.screen_image import prepare
from server.providers.screen_capture import grab_jpeg
from server.providers.vlm import VisionError


class LiveSessions:
    def __init__(self) -> None:
        self._by_user: dict[str, list[Perception]] = {}

    def add(self, user_id: str, perception: Perception) -> None:
        self._by_user.setdefault(user_id, []).append(perception)

    def remove(self, user_id: str, perception: Perception) -> None:
        live = self._by_user.get(user_id, [])
        if perception in live:
            live.remove(perception)
        if not live:
            self._by_user.pop(user_id, None)

    def perception_for(self, user_id: str) -> Perception | None:
        """The newest open session that sees a screen, else the newest open session."""
        live = self._by_user.get(user_id, [])
        seeing = [p for p in live if p.latest_visual()]
        return (seeing or live or [None])[-1]


class DesktopGlance:
    """Desktop mode (SCREEN_CAPTURE) without an open session: grab this machine's screen
    once when asked and describe it with the shared describer (and its cache)."""

    def __init__(self, describer: ScreenDescriber, user_id: str, monitor: int) -> None:
        self.describer = describer
        self.user_id = user_id
        self.monitor = monitor
        self._latest: str | None = None
        self._t0 = time.monotonic()

    def latest_visual(self) -> str | None:
        return self._latest

    def latest_affect(self) -> dict[str, Any] | None:
        return None

    async def fresh_visual(self, timeout_s: float) -> str | None:
        try:
            async with asyncio.timeout(timeout_s):
                jpeg = await asyncio.to_thread(grab_jpeg, self.monitor)
                thumb, key = await asyncio.to_thread(prepare, jpeg)
                t_ms = round((time.monotonic() - self._t0) * 1000)
                text, _ = await self.describer.describe(
                    self.user_id, PreparedFrame(jpeg, t_ms, thumb, key)
                )
        except (TimeoutError, VisionError, InvalidImage, RuntimeError, OSError):
            return None
        self._latest = text
        return text
