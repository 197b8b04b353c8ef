"""Screen perception: screen frames in, short VLM descriptions out, as cheaply as possible.

Frames come from the browser (binary 0x02 JPEGs or `input_image`) or, in desktop mode, from
`ScreenCapture` grabbing this machine's monitor with mss. Per session a `ScreenPipeline` runs
two stages, each fed by a single latest-wins slot (never a queue, so a burst of frames costs
one decode and at most one VLM call):

1. prepare: decode to a 64x36 grey thumbnail in a worker thread, drop corrupt frames (an
   `invalid_image` error) and frames that did not change since the last accepted one;
2. describe: wait out the minimum interval between VLM calls (a newer changed frame replaces
   the waiting one), ask the shared `ScreenDescriber` (cache by image hash, then the VLM) and
   emit `vision.description`.

A screen question calls `ScreenPipeline.fresh`, which skips the interval so the answer sees
the screen as it is now. Thresholds: docs/analysis.md ("Screen change detection").
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import struct
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from analysis.screen import (
    ChangeDetector,
    InvalidImage,
    hash_distance,
    image_hash,
    max_cell_diff,
    mean_abs_diff,
    thumbnail,
)
from server.logging import get_logger
from server.providers.screen_capture import (  # desktop capture (re-exported here)
    CaptureUnavailable,
    grab_jpeg,
    probe_capture,
)
from server.providers.vlm import VisionClient, VisionError

log = get_logger(__name__)

MAX_JPEG_SEGMENTS = 256  # header walk limit: real files reach the frame header in < 20
MAX_PIXELS = 64_000_000  # an 8K screen is 33 MP; more is a decompression bomb, not a screen
CELL_THRESHOLD = 0.15  # same as ChangeDetector's default: a 1/16 cell changing this much
NEAR_HASH_BITS = 6  # cache lookups also try hashes this close (then check the thumbnail)
MAX_FRAME_RETRIES = 2  # a frame the VLM failed on is retried this often, then dropped
MAX_BACKOFF_S = 60.0

Emit = Callable[[dict[str, Any]], Awaitable[None]]
OnError = Callable[[str, str], Awaitable[None]]
CountUsage = Callable[[str, dict[str, int]], Awaitable[None]]
Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]


# --------------------------------------------------------------------------- image checks


def sniff_format(data: bytes) -> str | None:
    """ "jpeg", "png" or "webp" from the magic bytes (what the VLM data URL accepts)."""
    head = bytes(data[:12])
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header alone, or None when it cannot be read.

    Lets us refuse decompression bombs before OpenCV allocates the full image."""
    fmt = sniff_format(data)
    try:
        if fmt == "png" and len(data) >= 24 and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return w, h
        if fmt == "jpeg":
            return _jpeg_size(data)
        if fmt == "webp" and len(data) >= 30:
            chunk = data[12:16]
            if chunk == b"VP8X":
                w = int.from_bytes(data[24:27], "little") + 1
                h = int.from_bytes(data[27:30], "little") + 1
                return w, h
            if chunk == b"VP8L":
                bits = int.from_bytes(data[21:25], "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
    except struct.error:
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk the JPEG markers to the first SOFn frame header (a bounded number of them)."""
    i, n = 2, len(data)
    for _ in range(MAX_JPEG_SEGMENTS):
        if i + 4 > n:
            return None
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            i += 2
            continue
        seg = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE):
            if i + 9 > n:
                return None
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        if seg < 2:
            return None
        i += 2 + seg
    return None


def check_image(data: bytes, max_pixels: int = MAX_PIXELS) -> str | None:
    """Why these bytes cannot be a screen image (cheap, header only), or None."""
    if not data:
        return "the frame is empty"
    fmt = sniff_format(data)
    if fmt is None:
        return f"not a JPEG, PNG or WebP image (starts with {bytes(data[:4]).hex()})"
    size = image_size(data)
    if size is not None:
        w, h = size
        if w <= 0 or h <= 0:
            return f"the {fmt.upper()} header gives an empty size {w}x{h}"
        if w * h > max_pixels:
            return f"{w}x{h} is larger than {max_pixels // 1_000_000} megapixels"
    return None


def prepare(data: bytes) -> tuple[np.ndarray, str]:
    """Validate, decode and thumbnail a frame; returns (thumbnail, image hash).

    CPU work (a few ms for a 1080p JPEG): run it in a worker thread. Raises InvalidImage."""
    if why := check_image(data):
        raise InvalidImage(why)
    try:
        thumb = thumbnail(data)
    except cv2.error as e:
        raise InvalidImage(f"could not decode image: {e.msg or e}") from None
    return thumb, image_hash(thumb)


def same_screen(a: np.ndarray, b: np.ndarray, threshold: float) -> bool:
    """The change detector's rule, both ways: no global and no local change."""
    if a.shape != b.shape:
        return False
    return mean_abs_diff(a, b) < threshold and max_cell_diff(a, b) < CELL_THRESHOLD


# --------------------------------------------------------------------------- shared parts


@dataclass
class _Cached:
    thumb: np.ndarray
    text: str
    expires: float = math.inf


class DescriptionCache:
    """LRU of screen descriptions keyed by (user, image hash), shared by all sessions.

    The 64-bit hash only shortlists: a hit also needs the stored thumbnail to match, so two
    screens with the same layout but different content do not share a description. Scoped
    by user so one user's screen text never reaches another user's persona.
    """

    def __init__(
        self,
        size: int = 256,
        threshold: float = 0.04,
        ttl_s: float = math.inf,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size = size
        self.threshold = threshold
        self.ttl_s = ttl_s
        self.clock = clock
        self._items: OrderedDict[tuple[str, str], _Cached] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def _find(self, scope: str, key: str, thumb: np.ndarray) -> tuple[str, str] | None:
        """The entry for this screen: the exact hash first, then near hashes (JPEG
        re-encoding flips a bit or two), each confirmed on the thumbnail."""
        now = self.clock()
        expired = [slot for slot, item in self._items.items() if item.expires <= now]
        for slot in expired:  # a description this old may no longer match what is shown
            del self._items[slot]
        exact = self._items.get((scope, key))
        if exact is not None and same_screen(exact.thumb, thumb, self.threshold):
            return scope, key
        for slot, item in self._items.items():
            if (
                slot[0] == scope
                and slot[1] != key
                and hash_distance(slot[1], key) <= NEAR_HASH_BITS
                and same_screen(item.thumb, thumb, self.threshold)
            ):
                return slot
        return None

    def peek(self, scope: str, key: str, thumb: np.ndarray) -> str | None:
        """The cached description without counting or touching the LRU order."""
        slot = self._find(scope, key, thumb)
        return None if slot is None else self._items[slot].text

    def get(self, scope: str, key: str, thumb: np.ndarray) -> str | None:
        """The cached description (counted as a hit or a miss)."""
        slot = self._find(scope, key, thumb)
        if slot is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(slot)
        return self._items[slot].text

    def put(self, scope: str, key: str, thumb: np.ndarray, text: str) -> None:
        if self.size <= 0:
            return
        self._items[(scope, key)] = _Cached(thumb.copy(), text, self.clock() + self.ttl_s)
        self._items.move_to_end((scope, key))
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def stats(self) -> dict[str, int]:
        return {"entries": len(self._items), "hits": self.hits, "misses": self.misses}


@dataclass
class PreparedFrame:
    jpeg: bytes
    t_ms: int
    thumb: np.ndarray
    key: str
    attempts: int = 0


@dataclass
class _Flight:
    thumb: np.ndarray
    task: asyncio.Task[str]


class ScreenDescriber:
    """One per process: the VLM client, the description cache and usage counting.

    Identical frames described at the same moment (two sessions of one user fed by the same
    desktop capture) share one VLM call.
    """

    def __init__(
        self,
        client: VisionClient,
        cache: DescriptionCache,
        count_usage: CountUsage | None = None,
    ) -> None:
        self.client = client
        self.cache = cache
        self.count_usage = count_usage
        self.vlm_calls = 0
        self._inflight: dict[tuple[str, str], _Flight] = {}

    def peek(self, user_id: str, frame: PreparedFrame) -> str | None:
        return self.cache.peek(user_id, frame.key, frame.thumb)

    async def describe(self, user_id: str, frame: PreparedFrame) -> tuple[str, bool]:
        """(description, came_from_cache). Raises VisionError when the VLM fails."""
        slot = (user_id, frame.key)
        text = self.cache.get(user_id, frame.key, frame.thumb)
        if text is None:
            flight = self._inflight.get(slot)
            if flight is not None and same_screen(flight.thumb, frame.thumb, self.cache.threshold):
                text = await asyncio.shield(flight.task)
        if text is not None:
            await self._count(user_id, {"vlm_cache_hits": 1})
            return text, True
        task = asyncio.create_task(self.client.get_visual_description(frame.jpeg))
        self._inflight[slot] = _Flight(frame.thumb, task)
        task.add_done_callback(lambda t: self._landed(user_id, frame, t))
        self.vlm_calls += 1
        await self._count(user_id, {"vlm_calls": 1})
        return await asyncio.shield(task), False

    def _landed(self, user_id: str, frame: PreparedFrame, task: asyncio.Task[str]) -> None:
        slot = (user_id, frame.key)
        if (f := self._inflight.get(slot)) is not None and f.task is task:
            del self._inflight[slot]
        if not task.cancelled() and task.exception() is None:
            self.cache.put(user_id, frame.key, frame.thumb, task.result())

    async def _count(self, user_id: str, counters: dict[str, int]) -> None:
        if self.count_usage is None:
            return
        try:
            await self.count_usage(user_id, counters)
        except Exception as e:  # usage counting must never stop perception
            log.warning("vlm_usage_not_counted", error=f"{type(e).__name__}: {e}")

    async def aclose(self) -> None:
        for f in list(self._inflight.values()):
            f.task.cancel()
        await self.client.aclose()


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
class _Notifier:
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
        self._changed = _Notifier()
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


# --------------------------------------------------------------------------- desktop mode


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
        self._ticked = _Notifier()
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
