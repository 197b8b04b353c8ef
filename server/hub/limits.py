"""Abuse limits on the WebSocket: messages per second per connection and per user (across
all of the user's connections), and how many sessions a user may have open at once.

Why per user too: a per-connection limit alone lets one client multiply its rate by opening
more sockets. Why the drop report is deferred: a burst of 2,000 frames in 48 ms is dropped
faster than any report could be written, so the count is reported once the burst is over
(or a second after it began, for a flood that goes on) and every dropped frame is counted in
exactly one report."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

REPORT_EVERY_S = 1.0  # at most one rate_limited report a second
QUIET_S = 0.1  # a burst is over when no frame was dropped for this long


class TokenBucket:
    """``rate`` per second with a burst of one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.t = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class UserLimits:
    """Per-user state shared by the connections of this process: open sessions and one
    message bucket per user (dropped when the user's last session closes)."""

    def __init__(self, max_sessions: int, messages_per_s: float) -> None:
        self.max_sessions = max_sessions
        self.messages_per_s = messages_per_s
        self._open: Counter[str] = Counter()
        self._buckets: dict[str, TokenBucket] = {}

    def enter(self, user_id: str) -> bool:
        """Count a new session of this user, unless it would exceed the cap."""
        if self._open[user_id] >= self.max_sessions:
            return False
        self._open[user_id] += 1
        return True

    def leave(self, user_id: str) -> None:
        self._open[user_id] -= 1
        if self._open[user_id] <= 0:
            del self._open[user_id]
            self._buckets.pop(user_id, None)

    def open_sessions(self, user_id: str) -> int:
        return self._open[user_id]

    def bucket(self, user_id: str) -> TokenBucket:
        bucket = self._buckets.get(user_id)
        if bucket is None:
            bucket = self._buckets[user_id] = TokenBucket(self.messages_per_s)
        return bucket


class MessageLimiter:
    """One connection's message limits. ``allow()`` is called for every frame; frames over
    either limit are dropped and counted, and ``report(dropped, which)`` tells the client."""

    def __init__(
        self,
        per_connection: float,
        user_bucket: TokenBucket,
        report: Callable[[int, str], Awaitable[None]],
        spawn: Callable[[Any], asyncio.Task[Any]],
    ) -> None:
        self.connection = TokenBucket(per_connection)
        self.user = user_bucket
        self._report = report
        self._spawn = spawn
        self.dropped_total = 0
        self._dropped = 0
        self._which = "connection"
        self._last_drop = 0.0
        self._last_report = -REPORT_EVERY_S
        self._reporter: asyncio.Task[Any] | None = None

    def allow(self) -> bool:
        if not self.connection.allow():
            self._which = "connection"
        elif not self.user.allow():
            self._which = "user"
        else:
            return True
        self._dropped += 1
        self.dropped_total += 1
        self._last_drop = time.monotonic()
        if self._reporter is None:
            self._reporter = self._spawn(self._report_when_due(self._last_drop))
        return False

    async def _report_when_due(self, first: float) -> None:
        while True:
            burst_over = min(self._last_drop + QUIET_S, first + REPORT_EVERY_S)
            due = max(burst_over, self._last_report + REPORT_EVERY_S)
            left = due - time.monotonic()
            if left <= 0:
                break
            await asyncio.sleep(left)
        dropped, self._dropped = self._dropped, 0
        self._last_report = time.monotonic()
        self._reporter = None
        await self._report(dropped, self._which)
