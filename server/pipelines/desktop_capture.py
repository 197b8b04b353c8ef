"""Desktop mode: grab this machine's monitor with mss and feed every live session's pipeline."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from server.logging import get_logger
from server.pipelines.vision import Notifier, ScreenPipeline
from server.providers.screen_capture import CaptureUnavailable, grab_jpeg, probe_capture

log = get_logger(__name__)


@dataclass
class _Subscriber:
    pipeline: ScreenPipeline
    active: Callable[[], bool]


class ScreenCapture:
    """Desktop mode: one mss grab per interval, fanned out to every live session's pipeline
    (one grab serves all sessions; the loop only runs while someone is subscribed)."""

    def __init__(
        self,
        interval_s: float,
        monitor: int,
        on_status: Callable[[str, str], None],
    ) -> None:
        self.interval_s = interval_s
        self.monitor = monitor
        self.on_status = on_status
        self.grabs = 0
        self.failures = 0
        self.task: asyncio.Task[None] | None = None  # the capture loop, while it runs
        self._subs: list[_Subscriber] = []
        self._ticked = Notifier()
        self._failing = False

    async def start(self) -> str:
        """Probe the display once; raises CaptureUnavailable with the reason."""
        return await asyncio.to_thread(probe_capture, self.monitor)

    def subscribe(
        self, pipeline: ScreenPipeline, active: Callable[[], bool] = lambda: True
    ) -> None:
        """Feed this pipeline until it closes; frames are skipped while active() is false."""
        self._subs.append(_Subscriber(pipeline, active))
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._loop())

    @property
    def subscribers(self) -> int:
        return sum(not s.pipeline.closed for s in self._subs)

    async def _loop(self) -> None:
        while True:
            self._subs = [s for s in self._subs if not s.pipeline.closed]
            wanted = [s for s in self._subs if s.active()]
            if not self._subs:
                return
            if wanted:
                await self._grab_into(wanted)
            await asyncio.sleep(self.interval_s)

    async def wait_attempts(self, n: int) -> None:
        """Wait until n grabs were attempted (unbounded: wrap it in a timeout)."""
        while self.grabs + self.failures < n:
            await self._ticked.event.wait()

    async def _grab_into(self, subs: list[_Subscriber]) -> None:
        try:
            jpeg = await asyncio.to_thread(grab_jpeg, self.monitor)
        except CaptureUnavailable as e:
            self.failures += 1
            self._ticked.notify()
            if not self._failing:
                self._failing = True
                self.on_status("error", str(e))
                log.warning("screen_capture_failed", error=str(e))
            return
        if self._failing:
            self._failing = False
            self.on_status("ready", "")
            log.info("screen_capture_recovered")
        self.grabs += 1
        self._ticked.notify()
        for s in subs:
            s.pipeline.feed(jpeg)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
