"""Reminders for MongoStore: the reminders collection (keyed by the reminder id).

A mixin of MongoStore (it uses the store's database ``_d`` and clock ``_now``). Every
state change is one conditional update_one, so of two racing writers exactly one wins."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from server.store.base import ReminderRecord, ReminderStatus, Repeat, new_id, utcnow
from server.store.mongo_codec import aware, ms
from server.store.reminders_base import check_close_status


async def create_reminder_indexes(db: AsyncDatabase) -> None:
    await db.reminders.create_index(
        [("user_id", ASCENDING), ("status", ASCENDING), ("due_at", ASCENDING)],
        name="user_status_due",
    )


def reminder_doc(doc: dict[str, Any]) -> ReminderRecord:
    return ReminderRecord(
        id=doc["_id"],
        user_id=doc["user_id"],
        text=doc["text"],
        due_at=doc["due_at"].astimezone(UTC),
        created_at=doc["created_at"].astimezone(UTC),
        status=doc["status"],
        delivered_at=aware(doc.get("delivered_at")),
        attempts=int(doc.get("attempts", 0)),
        last_error=doc.get("last_error"),
        not_before=aware(doc.get("not_before")),
        repeat=Repeat.from_dict(doc.get("repeat")),
        occurrences=int(doc.get("occurrences", 0)),
    )


class MongoReminders:
    _d: Any  # MongoStore's database
    _now: Callable[[], datetime]

    async def add_reminder(
        self, user_id: str, text: str, due_at: datetime, repeat: Repeat | None = None
    ) -> ReminderRecord:
        record = ReminderRecord(
            id=new_id(),
            user_id=user_id,
            text=text,
            due_at=ms(due_at),
            created_at=self._now(),
            repeat=repeat,
        )
        await self._d.reminders.insert_one(
            {
                "_id": record.id,
                "user_id": user_id,
                "text": text,
                "due_at": record.due_at,
                "created_at": record.created_at,
                "status": record.status,
                "delivered_at": None,
                "attempts": 0,
                "last_error": None,
                "not_before": None,
                "repeat": repeat.as_dict() if repeat else None,
                "occurrences": 0,
            }
        )
        return record

    async def get_reminder(self, user_id: str, reminder_id: str) -> ReminderRecord | None:
        doc = await self._d.reminders.find_one({"user_id": user_id, "_id": reminder_id})
        return reminder_doc(doc) if doc is not None else None

    async def list_reminders(
        self, user_id: str, status: ReminderStatus | None = None, limit: int = 100
    ) -> list[ReminderRecord]:
        query: dict[str, Any] = {"user_id": user_id}
        if status is not None:
            query["status"] = status
        cursor = (
            self._d.reminders.find(query)
            .sort([("due_at", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [reminder_doc(d) async for d in cursor]

    async def count_reminders(self, user_id: str, status: ReminderStatus) -> int:
        return await self._d.reminders.count_documents({"user_id": user_id, "status": status})

    async def close_reminder(
        self, user_id: str, reminder_id: str, status: Literal["delivered", "cancelled"]
    ) -> bool:
        check_close_status(status)
        # One conditional update: of two racing closers only one still matches "pending".
        result = await self._d.reminders.update_one(
            {"_id": reminder_id, "user_id": user_id, "status": "pending"},
            {"$set": {"status": status, "delivered_at": ms(utcnow())}},
        )
        return result.modified_count > 0

    async def claim_reminder(self, user_id: str, reminder_id: str, until: datetime) -> bool:
        result = await self._d.reminders.update_one(
            {
                "_id": reminder_id,
                "user_id": user_id,
                "status": "pending",
                "$or": [{"not_before": None}, {"not_before": {"$lte": ms(utcnow())}}],
            },
            {"$set": {"not_before": ms(until)}},
        )
        return result.modified_count > 0

    async def fail_reminder_attempt(
        self, user_id: str, reminder_id: str, reason: str, retry_at: datetime | None
    ) -> bool:
        update: dict[str, Any] = {"last_error": reason}
        if retry_at is None:
            update |= {"status": "failed", "not_before": None, "delivered_at": ms(utcnow())}
        else:
            update["not_before"] = ms(retry_at)
        result = await self._d.reminders.update_one(
            {"_id": reminder_id, "user_id": user_id, "status": "pending"},
            {"$set": update, "$inc": {"attempts": 1}},
        )
        return result.modified_count > 0

    async def advance_reminder(
        self,
        user_id: str,
        reminder_id: str,
        due_at: datetime,
        next_due: datetime,
        error: str | None = None,
    ) -> bool:
        update: dict[str, Any] = {"due_at": ms(next_due), "attempts": 0, "not_before": None}
        inc: dict[str, Any] = {}
        if error is None:
            update |= {"delivered_at": ms(utcnow()), "last_error": None}
            inc["occurrences"] = 1
        else:
            update["last_error"] = error
        # One conditional update: the occurrence at due_at advances once, whoever finishes it.
        result = await self._d.reminders.update_one(
            {
                "_id": reminder_id,
                "user_id": user_id,
                "status": "pending",
                "due_at": ms(due_at),
                "repeat": {"$ne": None},
            },
            {"$set": update} | ({"$inc": inc} if inc else {}),
        )
        return result.modified_count > 0
