"""A session's face timeline: tracker results downsampled to one sample per interval and
stored in batches, in order, off the analysis path (a slow store never holds up a frame).
Composed by FacePipeline, which flushes it when the session ends."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from analysis.face import FaceFrameResult
from server.pipelines.face_readings import sample_data
from server.store.base import Sample

SaveSamples = Callable[[list[Sample]], Awaitable[None]]

SAMPLE_BATCH = 10  # timeline samples per store write


class FaceTimeline:
    """Samples every ``interval_ms`` of session time; ``on_stored`` counts what landed."""

    def __init__(
        self,
        save: SaveSamples,
        interval_ms: int,
        *,
        on_stored: Callable[[int], None],
        logger: Any,
    ) -> None:
        self._save = save
        self._interval_ms = interval_ms
        self._on_stored = on_stored
        self.log = logger
        self._last_sample_ms: float | None = None
        self._samples: list[Sample] = []
        self._writes: set[asyncio.Task[None]] = set()
        self._write_lock = asyncio.Lock()

    def offer(self, r: FaceFrameResult, now_ms: float) -> None:
        """Keep ``r`` as a sample when an interval has passed; write a full batch."""
        if self._last_sample_ms is None or now_ms - self._last_sample_ms >= self._interval_ms:
            self._last_sample_ms = now_ms
            self._samples.append(Sample("face", round(now_ms), sample_data(r)))
            if len(self._samples) >= SAMPLE_BATCH:
                self._start_write()

    def _start_write(self) -> None:
        batch, self._samples = self._samples, []
        task = asyncio.create_task(self._write(batch))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, batch: list[Sample]) -> None:
        async with self._write_lock:  # batches land in order
            try:
                await self._save(batch)
                self._on_stored(len(batch))
            except Exception:
                self.log.exception("face_samples_write_failed", samples=len(batch))

    async def flush(self) -> None:
        """Store every buffered sample now (session end) and wait for writes in flight."""
        if self._samples:
            self._start_write()
        if self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)
