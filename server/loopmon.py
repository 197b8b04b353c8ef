"""Event-loop lag monitor: how late the loop runs a callback that asked to wake up on time.

A background task sleeps ``interval_s`` over and over and records how much later than asked
it woke up. Anything that blocks the loop (CPU-heavy code, a sync call, a long burst of
callbacks) shows up as lag. Samples live in a bounded ring (``keep`` newest), so memory
stays fixed however long the server runs. ``GET /health/details`` reports the stats.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 for an empty list)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class LoopLagMonitor:
    def __init__(self, interval_s: float = 0.01, keep: int = 30_000) -> None:
        self.interval_s = interval_s
        self._samples: deque[float] = deque(maxlen=keep)  # lag in ms
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="loop-lag-monitor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.interval_s
        while True:
            t = loop.time()
            await asyncio.sleep(interval)
            self._samples.append(max(0.0, (loop.time() - t - interval) * 1000))

    def stats(self, *, reset: bool = False) -> dict[str, float | int]:
        """p50/p95/p99/max lag in ms over the samples kept (since the last reset)."""
        values = sorted(self._samples)
        if reset:
            self._samples.clear()
        return {
            "p50": round(percentile(values, 50), 2),
            "p95": round(percentile(values, 95), 2),
            "p99": round(percentile(values, 99), 2),
            "max": round(values[-1], 2) if values else 0.0,
            "samples": len(values),
            "interval_ms": round(self.interval_s * 1000, 2),
        }
