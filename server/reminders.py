"""Reminders' rules, shared by the REST API (server/api/reminders.py) and the agent's
schedule tools (server/agent/tools/schedule.py): the same limits, the same store and the
same wake-up of the user's open sessions, whichever way a reminder is made or cancelled.
Delivery lives in server/hub/reminders.py."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from server.config import Settings
from server.store.base import ReminderRecord, Repeat, Store, utcnow

PAST_GRACE = timedelta(seconds=60)  # clocks differ a little: "now" from a client is fine
# Offsets must be finite and bounded (1e300 or Infinity overflow timedelta); the settings'
# REMINDER_MAX_DAYS check is the real limit.
MAX_IN_SECONDS = 100 * 365 * 86400.0


class ReminderRefused(Exception):
    """A reminder request that breaks a rule; ``status`` is the HTTP status REST answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def reminder_json(r: ReminderRecord) -> dict[str, Any]:
    """The REST shape of a reminder (datetimes as ISO 8601 UTC)."""
    return {
        "id": r.id,
        "text": r.text,
        "due_at": r.due_at.isoformat(),
        "created_at": r.created_at.isoformat(),
        "status": r.status,
        "delivered_at": r.delivered_at.isoformat() if r.delivered_at else None,
        "attempts": r.attempts,
        "last_error": r.last_error,
        "repeat": repeat_json(r.repeat),
        "occurrences": r.occurrences,
    }


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[str, ...] = get_args(Weekday)
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


def repeat_json(rep: Repeat | None) -> dict[str, Any] | None:
    """The REST shape of a repeat rule (weekday by name)."""
    if rep is None:
        return None
    day = WEEKDAYS[rep.weekday] if rep.weekday is not None else None
    return {"every": rep.every, "at": rep.at, "weekday": day, "time_zone": rep.time_zone}


async def make_repeat(
    store: Store,
    user_id: str,
    every: str,
    at: str,
    weekday: str | None,
    time_zone: str | None,
) -> Repeat:
    """Check a repeat rule; the time zone defaults to the user's saved one (GET /v1/settings
    ``timezone``), else UTC."""
    if every not in ("daily", "weekly"):
        raise ReminderRefused(422, "repeat must be 'daily' or 'weekly'.")
    if not _CLOCK.match(at or ""):
        raise ReminderRefused(422, "at must be a time of day as HH:MM (00:00 to 23:59).")
    day: int | None = None
    if every == "weekly":
        if weekday is None or weekday.lower() not in WEEKDAYS:
            raise ReminderRefused(422, "A weekly reminder needs a weekday (monday ... sunday).")
        day = WEEKDAYS.index(weekday.lower())
    elif weekday is not None:
        raise ReminderRefused(422, "weekday is only for weekly reminders.")
    if time_zone is None:
        time_zone = (await store.get_user_settings(user_id)).get("timezone") or "UTC"
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReminderRefused(
            422, f"Unknown time zone {time_zone!r} (use an IANA name like Asia/Seoul)."
        ) from None
    return Repeat("weekly" if every == "weekly" else "daily", at, time_zone, day)


def next_occurrence(rep: Repeat, after: datetime) -> datetime:
    """The first occurrence strictly after ``after`` (UTC), at the rule's wall-clock time in
    its time zone: 09:00 stays 09:00 across daylight-saving changes."""
    tz = ZoneInfo(rep.time_zone)
    hour, minute = (int(x) for x in rep.at.split(":"))
    day = after.astimezone(tz).date()
    for _ in range(9):  # a weekly rule matches within 8 days
        if rep.weekday is None or day.weekday() == rep.weekday:
            when = datetime.combine(day, time(hour, minute), tzinfo=tz).astimezone(UTC)
            if when > after:
                return when
        day += timedelta(days=1)
    raise AssertionError("unreachable: some day within 9 matches a daily or weekly rule")


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


def due_time(due_at: datetime | None, in_seconds: float | None) -> datetime:
    """The due time from exactly one of an absolute time or an offset from now."""
    if (due_at is None) == (in_seconds is None):
        raise ReminderRefused(422, "Give exactly one of a due time or an offset from now.")
    if due_at is not None:
        if due_at.tzinfo is None:
            raise ReminderRefused(422, "The due time needs a time zone (e.g. +09:00 or Z).")
        return due_at
    if in_seconds is None or in_seconds < 0:
        raise ReminderRefused(422, "The offset from now must not be negative.")
    return utcnow() + timedelta(seconds=in_seconds)


async def create_reminder(
    store: Store,
    watchers: ReminderWatchers,
    settings: Settings,
    user_id: str,
    text: str,
    due: datetime | None,
    repeat: Repeat | None = None,
) -> ReminderRecord:
    """Check the limits, store the reminder, wake the user's sessions. A one-off is due at
    ``due``; a recurring one (``repeat``, no ``due``) at its next occurrence."""
    if (due is None) == (repeat is None):
        raise ReminderRefused(422, "Give a due time or a repeat rule, not both.")
    if repeat is not None:
        due = next_occurrence(repeat, utcnow())
    assert due is not None
    text = text.strip()
    if not text:
        raise ReminderRefused(422, "text must not be blank.")
    if len(text) > settings.reminder_max_chars:
        raise ReminderRefused(
            413,
            f"text is limited to {settings.reminder_max_chars} characters (REMINDER_MAX_CHARS).",
        )
    now = utcnow()
    if due < now - PAST_GRACE:
        raise ReminderRefused(422, "due_at is in the past.")
    if due > now + timedelta(days=settings.reminder_max_days):
        raise ReminderRefused(
            422,
            f"due_at is more than {settings.reminder_max_days} days ahead (REMINDER_MAX_DAYS).",
        )
    if await store.count_reminders(user_id, "pending") >= settings.reminders_max_pending:
        raise ReminderRefused(
            409,
            f"You have {settings.reminders_max_pending} pending reminders, the limit "
            "(REMINDERS_MAX_PENDING); cancel one first.",
        )
    await store.ensure_user(user_id)
    rec = await store.add_reminder(user_id, text, due, repeat)
    watchers.changed(user_id)
    return rec


async def cancel_reminder(
    store: Store, watchers: ReminderWatchers, user_id: str, reminder_id: str
) -> ReminderRecord:
    """Cancel a pending reminder of this user (404 for another user's or unknown id)."""
    if not await store.close_reminder(user_id, reminder_id, "cancelled"):
        rec = await store.get_reminder(user_id, reminder_id)
        if rec is None:
            raise ReminderRefused(404, "No such reminder for this user.")
        raise ReminderRefused(409, f"The reminder is already {rec.status}.")
    watchers.changed(user_id)
    rec = await store.get_reminder(user_id, reminder_id)
    if rec is None:  # deleted between the two calls: report it as not found
        raise ReminderRefused(404, "No such reminder for this user.")
    return rec
