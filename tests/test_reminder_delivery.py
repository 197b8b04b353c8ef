"""Reminder delivery (issue 11, item 11; seed 002): a reminder is marked delivered only after
its event was written to a socket; failed attempts are recorded with their reason and retried
with back-off, up to 3 attempts. Real SQLite store; the socket write is the `send` callable a
session passes (it answers whether the event was written)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

from server.hub.reminders import DeliveryPolicy, send_due
from server.store import SQLiteStore
from server.store.base import ReminderRecord, utcnow

POLICY = DeliveryPolicy(check_s=5.0, max_attempts=3, backoff_s=0.2, lease_s=5.0)


class Socket:
    """The client side of the write: fails the first ``failures`` writes."""

    def __init__(self, store: SQLiteStore, failures: int) -> None:
        self.store, self.failures = store, failures
        self.written: list[str] = []
        self.status_while_writing: list[str] = []

    async def send(self, r: ReminderRecord) -> bool:
        rec = await self.store.get_reminder("u", r.id)
        assert rec is not None
        self.status_while_writing.append(rec.status)
        if self.failures:
            self.failures -= 1
            return False  # the connection closed before the event was written
        self.written.append(r.id)
        return True


async def run_until_settled(store: SQLiteStore, sock: Socket, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not await store.list_reminders("u", "pending"):
            return
        wait = await send_due(store, "u", sock.send, POLICY)
        await asyncio.sleep(min(wait, 0.5))


async def test_delivered_only_after_the_write_and_retried_with_backoff(tmp_path: Path):
    store = SQLiteStore(tmp_path)
    await store.open()
    try:
        r = await store.add_reminder("u", "stretch", utcnow() - timedelta(seconds=1))
        sock = Socket(store, failures=2)
        t0 = time.monotonic()
        await run_until_settled(store, sock)
        took = time.monotonic() - t0
        assert sock.written == [r.id]  # sent once, on the 3rd attempt
        # never marked delivered before its write: pending during all three attempts
        assert sock.status_while_writing == ["pending", "pending", "pending"]
        done = await store.get_reminder("u", r.id)
        assert done is not None and done.status == "delivered" and done.attempts == 2
        assert done.last_error == "the connection closed before the event was written"
        assert took >= 0.2 + 0.4  # backed off 0.2 s, then 0.4 s
    finally:
        await store.close()


async def test_three_failed_attempts_mark_it_failed_with_the_reason(tmp_path: Path):
    store = SQLiteStore(tmp_path)
    await store.open()
    try:
        r = await store.add_reminder("u", "water", utcnow())
        sock = Socket(store, failures=10)
        await run_until_settled(store, sock)
        rec = await store.get_reminder("u", r.id)
        assert rec is not None and rec.status == "failed" and rec.attempts == 3
        assert "closed before the event was written" in (rec.last_error or "")
        assert sock.written == [] and len(sock.status_while_writing) == 3
    finally:
        await store.close()
