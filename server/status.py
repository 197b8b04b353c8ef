"""Module status as it changes: who is loading, ready or failed, with download progress,
for /health/details and the `server.status` event sessions push to their clients.

Latest wins: a subscriber is an asyncio.Event that is set on every change; it wakes, clears
it and sends the current snapshot, so a burst of progress updates costs one message."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

PROGRESS_INTERVAL_S = 0.25  # at most this often per module while bytes arrive


class StatusBoard:
    def __init__(self) -> None:
        self.progress: dict[str, dict[str, Any]] = {}
        self._subscribers: set[asyncio.Event] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._last_progress: dict[str, float] = {}

    def bind(self) -> None:
        """Call from the event loop that owns the subscribers."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    def subscribe(self) -> asyncio.Event:
        changed = asyncio.Event()
        self._subscribers.add(changed)
        return changed

    def unsubscribe(self, changed: asyncio.Event) -> None:
        self._subscribers.discard(changed)

    def _on_loop(self, fn: Any, *args: Any) -> None:
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(fn, *args)
        else:
            fn(*args)

    def notify(self) -> None:
        """Wake every subscriber; safe from any thread."""
        self._on_loop(self._wake)

    def _wake(self) -> None:
        for changed in self._subscribers:
            changed.set()

    def set_progress(self, module: str, file: str, done: int, total: int | None) -> None:
        """Download progress (from a worker thread), throttled; the final byte always shows."""
        now = time.monotonic()
        finished = total is not None and done >= total
        if not finished and now - self._last_progress.get(module, 0.0) < PROGRESS_INTERVAL_S:
            return
        self._last_progress[module] = now
        self._on_loop(self._apply, module, {"file": file, "done": done, "total": total})

    def _apply(self, module: str, entry: dict[str, Any] | None) -> None:
        if entry is None:
            self.progress.pop(module, None)
        else:
            self.progress[module] = entry
        self._wake()

    def clear_progress(self, module: str) -> None:
        self._on_loop(self._apply, module, None)
