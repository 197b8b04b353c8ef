"""Screen perception: screen frames in, short VLM descriptions out, as cheaply as possible.

Frames come from the browser (binary 0x02 JPEGs or `input_image`) or, in desktop mode, from
`ScreenCapture` (desktop_capture.py) grabbing this machine's monitor with mss. Per session a
`ScreenPipeline` runs two stages, each fed by a single latest-wins slot (never a queue, so a
burst of frames costs one decode and at most one VLM call):

1. prepare: decode to a 64x36 grey thumbnail in a worker thread (screen_image.py), drop
   corrupt frames (an `invalid_image` error) and frames that did not change since the last
   accepted one;
2. describe: wait out the minimum interval between VLM calls (a newer changed frame replaces
   the waiting one), ask the shared `ScreenDescriber` (screen_describer.py: cache by image
   hash, then the VLM) and emit `vision.description`.

A screen question calls `ScreenPipeline.fresh`, which skips the interval so the answer sees
the screen as it is now. Thresholds: docs/analysis.md ("Screen change detection").
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from analysis.screen import ChangeDetector, InvalidImage
from server.logging import get_logger
from server.pipelines.screen_describer import PreparedFrame, ScreenDescriber
from server.pipelines.screen_image import CELL_THRESHOLD, check_image, prepare
from server.providers.vlm import VisionError

log = get_logger(__name__)

MAX_FRAME_RETRIES = 2  # a frame the VLM failed on is retried this often, then dropped
MAX_BACKOFF_S = 60.0

Emit = Callable[[dict[str, Any]], Awaitable[None]]
OnError = Callable[[str, str], Awaitable[None]]
Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]

# --------------------------------------------------------------------------- per session


@dataclass
class Description:
    text: str
    t_ms: int
    at: float  # time.monotonic() when it became known
    cached: bool


@dataclass
class ScreenStats:
    frames: int = 0
    replaced: int = 0  # overwritten in the slot before anyone looked at them
    invalid: int = 0
    unchanged: int = 0
    vlm_calls: int = 0  # made for this session, failed ones included
    cache_hits: int = 0
    vlm_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Notifier:
    """Wake everyone waiting for the pipeline's state to change (sync to call)."""

    event: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self) -> None:
        self.event.set()
        self.event = asyncio.Event()


class ScreenPipeline:
    """A session's screen frames -> `vision.description` events; see the module docstring."""

    def __init__(
        self,
        describer: ScreenDescriber,
        user_id: str,
        emit: Emit,
        on_error: OnError,
        *,
        min_interval_s: float = 2.0,
        change_threshold: float = 0.04,
        spawn: Spawn | None = None,
        logger: Any = None,
    ) -> None:
        self.describer = describer
        self.user_id = user_id
        self.min_interval_s = min_interval_s
        self.stats = ScreenStats()
        self.latest: Description | None = None
        self.closed = False
        self._emit = emit
        self._on_error = on_error
        self._log = logger or log
        self._detector = ChangeDetector(change_threshold, cell_threshold=CELL_THRESHOLD)
        self._incoming: tuple[bytes, int] | None = None
        self._incoming_ready = asyncio.Event()
        self._preparing = False
        self._candidate: PreparedFrame | None = None
        self._candidate_ready = asyncio.Event()
        self._describing = False
        self._wake = asyncio.Event()  # a new candidate, or a screen question is waiting
        self._waiters = 0
        self._next_call_at = 0.0
        self._failures = 0
        self._error_reported = False
        self._changed = Notifier()
        self._t0 = time.monotonic()
        start = spawn or asyncio.create_task
        self._tasks = [start(self._prepare_loop()), start(self._describe_loop())]

    # --- input ----------------------------------------------------------------------------
    def feed(self, jpeg: bytes, t_ms: int | None = None) -> str | None:
        """Offer a frame; it replaces one not yet looked at (latest wins). Returns why the
        frame was refused when its header already shows it is not a usable image.

        t_ms is the client's timestamp; None means ms since this pipeline (session) began."""
        if self.closed:
            return None
        self.stats.frames += 1
        if problem := check_image(jpeg):
            self.stats.invalid += 1
            return problem
        if self._incoming is not None:
            self.stats.replaced += 1
        if t_ms is None:
            t_ms = round((time.monotonic() - self._t0) * 1000)
        self._incoming = (bytes(jpeg), t_ms)
        self._incoming_ready.set()
        return None

    @property
    def idle(self) -> bool:
        """Nothing is waiting or in progress that could produce a new description."""
        return not (
            self._incoming is not None
            or self._preparing
            or self._candidate is not None
            or self._describing
        )

    @property
    def decoding(self) -> bool:
        """A frame waits for, or is in, decoding and change detection."""
        return self._incoming is not None or self._preparing

    @property
    def latest_text(self) -> str | None:
        return self.latest.text if self.latest else None

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Wait (unbounded: wrap it in a timeout) until condition() holds; it is checked
        each time a frame finishes a stage."""
        while not condition():
            await self._changed.event.wait()

    async def fresh(self, timeout_s: float) -> str | None:
        """A description made after this call, waiting at most timeout_s (None on timeout).

        A frame waiting for its turn is described at once (the minimum interval does not
        apply while a question waits). With nothing pending, the latest description is
        still the current screen, so it is returned without waiting."""
        since = time.monotonic()
        if self.idle:
            return self.latest_text
        self._waiters += 1
        self._wake.set()
        try:
            async with asyncio.timeout(max(0.0, timeout_s)):
                while True:
                    if self.latest is not None and self.latest.at >= since:
                        return self.latest.text
                    if self.idle:  # the pending frame was unchanged, corrupt or failed
                        return self.latest_text
                    await self._changed.event.wait()
        except TimeoutError:
            return None
        finally:
            self._waiters -= 1

    async def close(self) -> None:
        """Stop both stages (a session's own task set usually does this)."""
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- stage 1: decode, validate, detect change -------------------------------------------
    async def _prepare_loop(self) -> None:
        try:
            while True:
                await self._incoming_ready.wait()
                self._incoming_ready.clear()
                item, self._incoming = self._incoming, None
                if item is None:
                    continue
                self._preparing = True
                try:
                    await self._prepare(*item)
                except Exception:
                    self._log.exception("screen_frame_failed")
                finally:
                    self._preparing = False
                    self._changed.notify()
        finally:
            self.closed = True
            self._log.info("screen_pipeline_closed", **self.stats.as_dict())

    async def _prepare(self, data: bytes, t_ms: int) -> None:
        try:
            thumb, key = await asyncio.to_thread(prepare, data)
        except InvalidImage as e:
            self.stats.invalid += 1
            await self._on_error("invalid_image", f"Screen frame dropped: {e}.")
            return
        if not self._detector.changed(thumb):
            self.stats.unchanged += 1
            return
        self._candidate = PreparedFrame(data, t_ms, thumb, key)
        self._candidate_ready.set()
        self._wake.set()

    # --- stage 2: rate limit, cache, VLM ------------------------------------------------------
    async def _describe_loop(self) -> None:
        while True:
            await self._candidate_ready.wait()
            await self._wait_turn()
            frame, self._candidate = self._candidate, None
            self._candidate_ready.clear()
            if frame is None:
                continue
            self._describing = True
            try:
                await self._describe(frame)
            except Exception:
                self._log.exception("screen_describe_failed")
            finally:
                self._describing = False
                self._changed.notify()

    async def _wait_turn(self) -> None:
        """Sleep until the minimum interval since the last VLM call has passed. Go at once
        when a screen question is waiting or the waiting frame is in the cache (no call)."""
        while True:
            frame = self._candidate
            if frame is None or self._waiters:
                return
            if self.describer.peek(self.user_id, frame) is not None:
                return
            delay = self._next_call_at - time.monotonic()
            if delay <= 0:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def _describe(self, frame: PreparedFrame) -> None:
        started = time.monotonic()
        try:
            text, cached = await self.describer.describe(self.user_id, frame)
        except VisionError as e:
            await self._failed(frame, started, e)
            return
        if cached:
            self.stats.cache_hits += 1
        else:
            self.stats.vlm_calls += 1
            self._next_call_at = started + self.min_interval_s
        self._failures = 0
        self._error_reported = False
        self.latest = Description(text, frame.t_ms, time.monotonic(), cached)
        self._changed.notify()
        self._log.info("screen_described", t_ms=frame.t_ms, cached=cached, chars=len(text))
        await self._emit(
            {"type": "vision.description", "t_ms": frame.t_ms, "text": text, "cached": cached}
        )

    async def _failed(self, frame: PreparedFrame, started: float, e: VisionError) -> None:
        """Back off, retry the frame a little (unless a newer one came), report once."""
        self.stats.vlm_errors += 1
        self.stats.vlm_calls += 1
        self._failures += 1
        backoff = min(self.min_interval_s * 2**self._failures, MAX_BACKOFF_S)
        self._next_call_at = started + max(backoff, self.min_interval_s)
        self._log.warning("screen_vlm_failed", error=str(e), failures=self._failures)
        if frame.attempts < MAX_FRAME_RETRIES and self._candidate is None:
            frame.attempts += 1
            self._candidate = frame
            self._candidate_ready.set()
        else:
            self._detector.reset()  # the same screen counts as new next time
        if not self._error_reported:
            self._error_reported = True
            await self._on_error(
                "vlm_error",
                f"Could not describe the screen: {e}. The persona carries on without it and "
                "the screen is retried.",
            )
