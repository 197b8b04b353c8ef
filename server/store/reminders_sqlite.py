"""Reminders for SQLiteStore: the reminders table, its added columns and rows.

A mixin of SQLiteStore (it uses the store's ``_write``, ``_fetch`` and clock ``_now``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Literal

from server.store.base import ReminderRecord, ReminderStatus, Repeat, new_id, utcnow
from server.store.reminders_base import check_close_status
from server.store.sqlite_codec import dumps, from_db_time, to_db_time

REMINDERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS reminders (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    text         TEXT NOT NULL,
    due_at       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    status       TEXT NOT NULL,
    delivered_at TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    not_before   TEXT,
    repeat       TEXT,
    occurrences  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS reminders_user_status_due ON reminders (user_id, status, due_at);
"""

REMINDER_COLS = (
    "id, user_id, text, due_at, created_at, status, delivered_at, attempts, last_error, "
    "not_before, repeat, occurrences"
)
# Columns added after the reminders table first shipped: added to older databases at open.
REMINDER_ADDED = {
    "attempts": "INTEGER NOT NULL DEFAULT 0",
    "last_error": "TEXT",
    "not_before": "TEXT",
    "repeat": "TEXT",  # recurring reminders: Repeat as JSON
    "occurrences": "INTEGER NOT NULL DEFAULT 0",
}


def reminder_row(row: Iterable[Any]) -> ReminderRecord:
    rid, user_id, text, due, created, status, delivered, attempts, last_error, not_before = row[:10]
    repeat, occurrences = row[10:]
    return ReminderRecord(
        id=rid,
        user_id=user_id,
        text=text,
        due_at=from_db_time(due),
        created_at=from_db_time(created),
        status=status,
        delivered_at=from_db_time(delivered) if delivered is not None else None,
        attempts=attempts,
        last_error=last_error,
        not_before=from_db_time(not_before) if not_before is not None else None,
        repeat=Repeat.from_dict(json.loads(repeat)) if repeat else None,
        occurrences=occurrences,
    )


class SQLiteReminders:
    _write: Any  # SQLiteStore's serialised write transaction
    _fetch: Any
    _now: Callable[[], datetime]

    async def add_reminder(
        self, user_id: str, text: str, due_at: datetime, repeat: Repeat | None = None
    ) -> ReminderRecord:
        due = to_db_time(due_at)
        record = ReminderRecord(
            id=new_id(),
            user_id=user_id,
            text=text,
            due_at=from_db_time(due),  # aware UTC, as it reads back
            created_at=self._now(),
            repeat=repeat,
        )
        async with self._write() as conn:
            await conn.execute(
                f"INSERT INTO reminders ({REMINDER_COLS}) "
                "VALUES (?, ?, ?, ?, ?, ?, NULL, 0, NULL, NULL, ?, 0)",
                (
                    record.id,
                    user_id,
                    text,
                    due,
                    to_db_time(record.created_at),
                    record.status,
                    dumps(repeat.as_dict()) if repeat else None,
                ),
            )
        return record

    async def get_reminder(self, user_id: str, reminder_id: str) -> ReminderRecord | None:
        rows = await self._fetch(
            f"SELECT {REMINDER_COLS} FROM reminders WHERE user_id = ? AND id = ?",
            (user_id, reminder_id),
        )
        return reminder_row(rows[0]) if rows else None

    async def list_reminders(
        self, user_id: str, status: ReminderStatus | None = None, limit: int = 100
    ) -> list[ReminderRecord]:
        sql = f"SELECT {REMINDER_COLS} FROM reminders WHERE user_id = ?"
        params: list[Any] = [user_id]
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        sql += " ORDER BY due_at, created_at, rowid LIMIT ?"
        params.append(limit)
        rows = await self._fetch(sql, params)
        return [reminder_row(r) for r in rows]

    async def count_reminders(self, user_id: str, status: ReminderStatus) -> int:
        rows = await self._fetch(
            "SELECT COUNT(*) FROM reminders WHERE user_id = ? AND status = ?", (user_id, status)
        )
        return int(rows[0][0])

    async def close_reminder(
        self, user_id: str, reminder_id: str, status: Literal["delivered", "cancelled"]
    ) -> bool:
        check_close_status(status)
        async with self._write() as conn:
            cur = await conn.execute(
                "UPDATE reminders SET status = ?, delivered_at = ? "
                "WHERE id = ? AND user_id = ? AND status = 'pending'",
                (status, to_db_time(utcnow()), reminder_id, user_id),
            )
            changed = cur.rowcount
            await cur.close()
        return changed > 0

    async def claim_reminder(self, user_id: str, reminder_id: str, until: datetime) -> bool:
        async with self._write() as conn:
            cur = await conn.execute(
                "UPDATE reminders SET not_before = ? WHERE id = ? AND user_id = ? "
                "AND status = 'pending' AND (not_before IS NULL OR not_before <= ?)",
                (to_db_time(until), reminder_id, user_id, to_db_time(utcnow())),
            )
            changed = cur.rowcount
            await cur.close()
        return changed > 0

    async def fail_reminder_attempt(
        self, user_id: str, reminder_id: str, reason: str, retry_at: datetime | None
    ) -> bool:
        if retry_at is None:
            sql = (
                "UPDATE reminders SET attempts = attempts + 1, last_error = ?, "
                "not_before = NULL, status = 'failed', delivered_at = ? "
            )
            params: list[Any] = [reason, to_db_time(utcnow())]
        else:
            sql = "UPDATE reminders SET attempts = attempts + 1, last_error = ?, not_before = ? "
            params = [reason, to_db_time(retry_at)]
        async with self._write() as conn:
            cur = await conn.execute(
                sql + "WHERE id = ? AND user_id = ? AND status = 'pending'",
                (*params, reminder_id, user_id),
            )
            changed = cur.rowcount
            await cur.close()
        return changed > 0

    async def advance_reminder(
        self,
        user_id: str,
        reminder_id: str,
        due_at: datetime,
        next_due: datetime,
        error: str | None = None,
    ) -> bool:
        if error is None:
            done = "occurrences = occurrences + 1, delivered_at = ?, last_error = NULL"
            params: list[Any] = [to_db_time(utcnow())]
        else:
            done, params = "last_error = ?", [error]
        async with self._write() as conn:
            cur = await conn.execute(
                f"UPDATE reminders SET {done}, due_at = ?, attempts = 0, not_before = NULL "
                "WHERE id = ? AND user_id = ? AND status = 'pending' AND due_at = ? "
                "AND repeat IS NOT NULL",
                (*params, to_db_time(next_due), reminder_id, user_id, to_db_time(due_at)),
            )
            changed = cur.rowcount
            await cur.close()
        return changed > 0
