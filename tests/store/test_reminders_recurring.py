"""Recurring reminders (seed 004's scheduled jobs): the next occurrence at a wall-clock time
in a time zone (daylight saving included), and delivery once per occurrence by two replicas
sharing one database (two store instances on the same SQLite file, or the same MongoDB
database on the wire server), each running the real delivery code with its own socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from server.hub.reminders import DeliveryPolicy, send_due
from server.reminders import next_occurrence
from server.store import MongoStore, SQLiteStore, Store, new_id
from server.store.base import ReminderRecord, Repeat, utcnow

POLICY = DeliveryPolicy(check_s=5.0, max_attempts=2, backoff_s=0.05, lease_s=5.0)
SEOUL = ZoneInfo("Asia/Seoul")


def test_daily_and_weekly_next_occurrence_keep_the_wall_clock() -> None:
    daily = Repeat("daily", "09:00", "America/New_York")
    # before 09:00 local: today; at or after it: tomorrow
    assert next_occurrence(daily, datetime(2026, 3, 6, 13, 0, tzinfo=UTC)) == datetime(
        2026, 3, 6, 14, 0, tzinfo=UTC
    )
    assert next_occurrence(daily, datetime(2026, 3, 6, 14, 0, tzinfo=UTC)) == datetime(
        2026, 3, 7, 14, 0, tzinfo=UTC
    )
    # across the spring-forward of 2026-03-08: still 09:00 in New York, one hour earlier in UTC
    assert next_occurrence(daily, datetime(2026, 3, 7, 15, 0, tzinfo=UTC)) == datetime(
        2026, 3, 8, 13, 0, tzinfo=UTC
    )
    weekly = Repeat("weekly", "21:30", "Asia/Seoul", 2)  # Wednesdays
    got = next_occurrence(weekly, datetime(2026, 12, 6, 0, 0, tzinfo=UTC))  # a Sunday
    assert got.astimezone(SEOUL).replace(tzinfo=None) == datetime(2026, 12, 9, 21, 30)
    # exactly at the occurrence: the one a week later
    assert next_occurrence(weekly, got) == got + timedelta(days=7)


@pytest.fixture(params=["sqlite", "mongo"])
async def replicas(
    request: pytest.FixtureRequest, tmp_path: Path, mongo_uri: str
) -> AsyncIterator[tuple[Store, Store]]:
    """Two opened stores over one database, as two server processes would have."""
    db = f"t_{new_id()}"
    pair: list[Store] = []
    for _ in range(2):
        s: Store = SQLiteStore(tmp_path) if request.param == "sqlite" else MongoStore(mongo_uri, db)
        await s.open()
        pair.append(s)
    try:
        yield pair[0], pair[1]
    finally:
        for s in pair:
            await s.close()


class Socket:
    """One replica's open session of the user: records what it wrote."""

    def __init__(self, fail: bool = False) -> None:
        self.written: list[tuple[str, datetime]] = []
        self.fail = fail

    async def send(self, r: ReminderRecord) -> bool:
        await asyncio.sleep(0.01)  # a real write takes a moment: let the other replica race
        if self.fail:
            return False
        self.written.append((r.id, r.due_at))
        return True


def now_rule(every: str = "daily") -> tuple[Repeat, datetime]:
    """A rule whose occurrence today (local wall clock, whole minute) has just passed."""
    local = (utcnow() - timedelta(minutes=1)).astimezone(SEOUL)
    weekday = local.weekday() if every == "weekly" else None
    rule = Repeat(every, local.strftime("%H:%M"), "Asia/Seoul", weekday)  # type: ignore[arg-type]
    due = local.replace(second=0, microsecond=0).astimezone(UTC)
    return rule, due


async def test_each_occurrence_is_sent_once_across_two_replicas(
    replicas: tuple[Store, Store],
) -> None:
    one, two = replicas
    rule, due = now_rule("daily")
    r = await one.add_reminder("u", "stretch", due, rule)
    a, b = Socket(), Socket()
    await asyncio.gather(send_due(one, "u", a.send, POLICY), send_due(two, "u", b.send, POLICY))
    assert a.written + b.written == [(r.id, due)]  # once, by one of the two
    got = await two.get_reminder("u", r.id)
    assert got is not None and got.status == "pending" and got.occurrences == 1
    assert got.due_at == due + timedelta(days=1)  # tomorrow, same wall clock in Seoul
    assert got.due_at.astimezone(SEOUL).strftime("%H:%M") == rule.at
    # both replicas look again: the next occurrence is not due yet, nothing more is sent
    waits = await asyncio.gather(
        send_due(one, "u", a.send, POLICY), send_due(two, "u", b.send, POLICY)
    )
    assert a.written + b.written == [(r.id, due)] and min(waits) > 0
    # listed as pending, and cancelled: never sent again
    assert [x.id for x in await one.list_reminders("u", "pending")] == [r.id]
    assert await two.close_reminder("u", r.id, "cancelled")
    assert (await one.get_reminder("u", r.id)).status == "cancelled"  # type: ignore[union-attr]


async def test_missed_occurrences_are_sent_once_and_a_failing_one_is_skipped(
    replicas: tuple[Store, Store],
) -> None:
    one, two = replicas
    rule, due = now_rule("weekly")
    away = due - timedelta(days=21)  # three weeks away: three occurrences missed
    r = await one.add_reminder("u", "weekly review", away, rule)
    sock = Socket()
    await send_due(two, "u", sock.send, POLICY)
    assert sock.written == [(r.id, away)]  # one event for the missed ones, not three
    got = await one.get_reminder("u", r.id)
    assert got is not None and got.due_at == due + timedelta(days=7) and got.occurrences == 1
    # an occurrence whose writes keep failing is skipped; the series goes on
    late = await one.add_reminder("u", "tea", due, Repeat("daily", rule.at, "Asia/Seoul"))
    broken = Socket(fail=True)
    for _ in range(POLICY.max_attempts):
        await send_due(one, "u", broken.send, POLICY)
        await asyncio.sleep(POLICY.backoff_s * 2)
    got = await two.get_reminder("u", late.id)
    assert got is not None and got.status == "pending" and got.occurrences == 0
    assert got.due_at == due + timedelta(days=1) and got.attempts == 0
    assert got.last_error == "the connection closed before the event was written"
