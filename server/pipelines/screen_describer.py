"""Screen descriptions shared by all sessions: the VLM client behind a description cache.

One `ScreenDescriber` per process; the cache is keyed by (user, image hash) and confirmed on
the thumbnail, and identical frames described at the same moment share one VLM call.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from analysis.screen import hash_distance
from server.logging import get_logger
from server.pipelines.screen_image import same_screen
from server.providers.vlm import VisionClient

log = get_logger(__name__)

NEAR_HASH_BITS = 6  # cache lookups also try hashes this close (then check the thumbnail)

CountUsage = Callable[[str, dict[str, int]], Awaitable[None]]


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
