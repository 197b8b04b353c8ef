"""Reminder delivery: each connected session sends its user's reminders as they fall due.

Why per session, sleeping until the next due time: there is nothing to do between
reminders, so no polling loop runs every second. A change made through this process (REST
add or cancel) wakes the user's sessions at once (`ReminderWatchers`); a change made by
another process sharing the database is seen within `REMINDER_CHECK_S`. A reminder that fell
due while the user had no session open is delivered when they next connect. The store's
atomic pending -> delivered update makes one session the winner when a user has several
open, so a reminder is sent once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from server.logging import get_logger
from server.store.base import ReminderRecord, Store, utcnow

log = get_logger(__name__)


def reminder_json(r: ReminderRecord) -> dict[str, Any]:
    """The REST shape of a reminder (datetimes as ISO 8601 UTC)."""
    return {
        "id": r.id,
        "text": r.text,
        "due_at": r.due_at.isoformat(),
        "created_at": r.created_at.isoformat(),
        "status": r.status,
        "delivered_at": r.delivered_at.isoformat() if r.delivered_at else None,
    }


def reminder_event(r: ReminderRecord) -> dict[str, Any]:
    return {"type": "reminder", "id": r.id, "text": r.text, "due_at": r.due_at.isoformat()}


class ReminderWatchers:
    """Which sessions of which user want to hear that reminders changed."""

    def __init__(self) -> None:
        self._by_user: dict[str, set[asyncio.Event]] = {}

    def watch(self, user_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self._by_user.setdefault(user_id, set()).add(event)
        return event

    def unwatch(self, user_id: str, event: asyncio.Event) -> None:
        events = self._by_user.get(user_id)
        if events is not None:
            events.discard(event)
            if not events:
                del self._by_user[user_id]

    def changed(self, user_id: str) -> None:
        for event in self._by_user.get(user_id, ()):
            event.set()


async def deliver_reminders(
    store: Store,
    watchers: ReminderWatchers,
    user_id: str,
    send: Callable[[ReminderRecord], Awaitable[None]],
    check_s: float,
) -> None:
    """Run for the life of a session: hand each reminder to ``send`` when it falls due. A
    store error is logged and tried again after ``check_s``; it never ends the session."""
    wake = watchers.watch(user_id)
    try:
        while True:
            wake.clear()
            try:
                wait = await _send_due(store, user_id, send, check_s)
            except Exception:
                log.exception("reminder_check_failed")
                wait = check_s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await wake.wait()
    finally:
        watchers.unwatch(user_id, wake)


async def _send_due(
    store: Store, user_id: str, send: Callable[[ReminderRecord], Awaitable[None]], check_s: float
) -> float:
    """Send every reminder due now; return the seconds until the next check."""
    while True:
        upcoming = await store.list_reminders(user_id, "pending", limit=1)
        if not upcoming:
            return check_s
        r = upcoming[0]
        left = (r.due_at - utcnow()).total_seconds()
        if left > 0:
            return min(check_s, left)
        if await store.close_reminder(user_id, r.id, "delivered"):
            log.info("reminder_delivered", reminder_id=r.id)
            await send(r)
