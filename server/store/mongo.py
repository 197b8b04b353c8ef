"""MongoDB store via PyMongo's async API (AsyncMongoClient; Motor is end-of-life).

Used when several server processes share one database (docker-compose). Ids we mint
(sessions, messages, reminders) and user ids are the documents' ``_id``; every filter
has the user id and every secondary index starts with ``user_id``. BSON datetimes have
millisecond precision, so times are truncated to the millisecond before they are stored
*and* returned: a record returned by a write equals the record read back later.

Durability: both clients use write concern ``w="majority", j=True``, whatever the URI says,
so a write method returns only once the write is journaled (on a replica set, on a
majority of members) and the caller may acknowledge it.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.mongodb import MongoDBSaver
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, MongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from server.store.base import (
    MessageRecord,
    ReminderRecord,
    ReminderStatus,
    Repeat,
    Role,
    Sample,
    SessionRecord,
    SessionStatus,
    Store,
    new_id,
    utcnow,
)
from server.store.initiative import MongoInitiative, create_initiative_indexes
from server.store.sqlite import check_close_status, check_counter_name
from server.store.tasks_mongo import MongoTasksMixin, create_task_indexes
from server.store.vocabulary import MongoVocabulary

PING_TIMEOUT_S = 3.0
# Keyword options override the URI's: a "w=0" in MONGODB_URI cannot make writes unacknowledged.
WRITE_CONCERN: dict[str, Any] = {"w": "majority", "journal": True}


def _ms(dt: datetime) -> datetime:
    """Aware UTC datetime truncated to what BSON keeps (milliseconds)."""
    if dt.tzinfo is None:  # naive values are taken to be UTC already
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


def _aware(dt: datetime | None) -> datetime | None:
    return dt.astimezone(UTC) if dt is not None else None


def _session(doc: dict[str, Any]) -> SessionRecord:
    return SessionRecord(
        id=doc["_id"],
        user_id=doc["user_id"],
        persona_id=doc["persona_id"],
        thread_id=doc["thread_id"],
        status=doc["status"],
        settings=doc.get("settings") or {},
        started_at=doc["started_at"].astimezone(UTC),
        ended_at=_aware(doc.get("ended_at")),
    )


def _message(doc: dict[str, Any]) -> MessageRecord:
    return MessageRecord(
        id=doc["_id"],
        session_id=doc["session_id"],
        user_id=doc["user_id"],
        persona_id=doc["persona_id"],
        role=doc["role"],
        content=doc["content"],
        created_at=doc["created_at"].astimezone(UTC),
        timings=doc.get("timings"),
        interrupted=bool(doc.get("interrupted", False)),
    )


def _reminder(doc: dict[str, Any]) -> ReminderRecord:
    return ReminderRecord(
        id=doc["_id"],
        user_id=doc["user_id"],
        text=doc["text"],
        due_at=doc["due_at"].astimezone(UTC),
        created_at=doc["created_at"].astimezone(UTC),
        status=doc["status"],
        delivered_at=_aware(doc.get("delivered_at")),
        attempts=int(doc.get("attempts", 0)),
        last_error=doc.get("last_error"),
        not_before=_aware(doc.get("not_before")),
        repeat=Repeat.from_dict(doc.get("repeat")),
        occurrences=int(doc.get("occurrences", 0)),
    )


class MongoStore(MongoVocabulary, MongoInitiative, MongoTasksMixin, Store):
    """Store in database ``db_name`` at ``uri``.

    The LangGraph checkpointer is ``MongoDBSaver`` on a separate *sync* MongoClient
    (langgraph-checkpoint-mongodb 0.5 has no async saver; its a* methods run the sync
    calls in worker threads), in the same database.
    """

    _ms = staticmethod(_ms)

    def __init__(self, uri: str, db_name: str = "desktopmate") -> None:
        self.uri = uri
        self.db_name = db_name
        self._client: AsyncMongoClient | None = None
        self._db: AsyncDatabase | None = None
        self._sync_client: MongoClient | None = None
        self._saver: MongoDBSaver | None = None
        self._last_time: datetime | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        if self._client is not None:
            return
        client: AsyncMongoClient = AsyncMongoClient(self.uri, tz_aware=True, **WRITE_CONCERN)
        sync_client: MongoClient | None = None
        try:
            db = client[self.db_name]
            await self._create_indexes(db)
            sync_client = MongoClient(self.uri, tz_aware=True, **WRITE_CONCERN)
            # The saver's constructor does blocking I/O (list/create indexes): keep it
            # off the event loop.
            saver = await asyncio.to_thread(MongoDBSaver, sync_client, db_name=self.db_name)
        except BaseException:
            if sync_client is not None:
                await asyncio.to_thread(sync_client.close)
            await client.close()
            raise
        self._client, self._db = client, db
        self._sync_client, self._saver = sync_client, saver

    @staticmethod
    async def _create_indexes(db: AsyncDatabase) -> None:
        # users and sessions/messages/reminders are keyed by their _id (unique by definition).
        await db.sessions.create_index(
            [("user_id", ASCENDING), ("started_at", DESCENDING)], name="user_started"
        )
        await db.messages.create_index(
            [("user_id", ASCENDING), ("session_id", ASCENDING), ("created_at", ASCENDING)],
            name="user_session_created",
        )
        await db.messages.create_index(
            [("user_id", ASCENDING), ("persona_id", ASCENDING), ("role", ASCENDING)],
            name="user_persona_role",
        )
        await db.samples.create_index(
            [("user_id", ASCENDING), ("session_id", ASCENDING), ("t_ms", ASCENDING)],
            name="user_session_t",
        )
        await db.usage.create_index([("user_id", ASCENDING)], unique=True, name="user_unique")
        await db.usage_daily.create_index(
            [("user_id", ASCENDING), ("day", ASCENDING)], unique=True, name="user_day_unique"
        )
        await db.reports.create_index(
            [("user_id", ASCENDING), ("session_id", ASCENDING)],
            unique=True,
            name="user_session_unique",
        )
        await db.reminders.create_index(
            [("user_id", ASCENDING), ("status", ASCENDING), ("due_at", ASCENDING)],
            name="user_status_due",
        )
        await create_task_indexes(db)
        await create_initiative_indexes(db)
        # server-wide crash recovery (recover_sessions), the one index not led by user_id
        await db.sessions.create_index(
            [("status", ASCENDING), ("owner", ASCENDING)], name="status_owner"
        )

    async def close(self) -> None:
        client, sync_client = self._client, self._sync_client
        self._client = self._db = self._sync_client = self._saver = None
        try:
            if sync_client is not None:
                await asyncio.to_thread(sync_client.close)
        finally:
            if client is not None:
                await client.close()

    async def ping(self) -> bool:
        if self._client is None:
            return False
        try:
            async with asyncio.timeout(PING_TIMEOUT_S):
                reply = await self._client.admin.command("ping")
        except (PyMongoError, TimeoutError):
            return False
        return bool(reply.get("ok"))

    def checkpointer(self) -> BaseCheckpointSaver:
        if self._saver is None:
            raise RuntimeError("MongoStore.checkpointer() needs open() first")
        return self._saver

    # -- helpers -------------------------------------------------------------------

    @property
    def _d(self) -> AsyncDatabase:
        if self._db is None:
            raise RuntimeError("MongoStore is not open")
        return self._db

    def _now(self) -> datetime:
        """utcnow() at ms precision, bumped by 1 ms on ties so order equals insert order."""
        now = _ms(utcnow())
        if self._last_time is not None and now <= self._last_time:
            now = self._last_time + timedelta(milliseconds=1)
        self._last_time = now
        return now

    # -- users and sessions --------------------------------------------------------

    async def ensure_user(self, user_id: str) -> None:
        await self._d.users.update_one(
            {"_id": user_id}, {"$setOnInsert": {"created_at": _ms(utcnow())}}, upsert=True
        )

    async def create_session(
        self, user_id: str, persona_id: str, settings: dict[str, Any] | None = None
    ) -> SessionRecord:
        sid = new_id()
        record = SessionRecord(
            id=sid,
            user_id=user_id,
            persona_id=persona_id,
            thread_id=sid,
            status="active",
            settings=dict(settings or {}),
            started_at=self._now(),
        )
        await self.ensure_user(user_id)
        await self._d.sessions.insert_one(
            {
                "_id": sid,
                "user_id": user_id,
                "persona_id": persona_id,
                "thread_id": sid,
                "status": record.status,
                "settings": record.settings,
                "started_at": record.started_at,
                "ended_at": None,
            }
        )
        return record

    async def get_session(self, user_id: str, session_id: str) -> SessionRecord | None:
        doc = await self._d.sessions.find_one({"user_id": user_id, "_id": session_id})
        return _session(doc) if doc is not None else None

    async def list_sessions(
        self, user_id: str, limit: int = 50, offset: int = 0
    ) -> list[SessionRecord]:
        cursor = (
            self._d.sessions.find({"user_id": user_id})
            .sort([("started_at", DESCENDING), ("_id", DESCENDING)])
            .skip(offset)
            .limit(limit)
        )
        return [_session(d) async for d in cursor]

    async def update_session(
        self,
        user_id: str,
        session_id: str,
        *,
        status: SessionStatus | None = None,
        settings: dict[str, Any] | None = None,
        ended_at: datetime | None = None,
    ) -> bool:
        fields: dict[str, Any] = {}
        if status is not None:
            fields["status"] = status
        if settings is not None:
            fields["settings"] = settings
        if ended_at is not None:
            fields["ended_at"] = _ms(ended_at)
        query = {"user_id": user_id, "_id": session_id}
        if not fields:  # nothing to change: report whether it exists for this user
            return await self._d.sessions.count_documents(query, limit=1) > 0
        result = await self._d.sessions.update_one(query, {"$set": fields})
        return result.matched_count > 0

    # -- live sessions: ownership and crash recovery -------------------------------

    async def claim_session(self, user_id: str, session_id: str, owner: str) -> bool:
        result = await self._d.sessions.update_one(
            {"user_id": user_id, "_id": session_id},
            {"$set": {"status": "active", "owner": owner, "heartbeat_at": _ms(utcnow())}},
        )
        return result.matched_count > 0

    async def heartbeat_sessions(self, owner: str) -> int:
        result = await self._d.sessions.update_many(
            {"status": "active", "owner": owner}, {"$set": {"heartbeat_at": _ms(utcnow())}}
        )
        return result.matched_count

    async def sessions_owned_elsewhere(self, session_ids: list[str], owner: str) -> list[str]:
        if not session_ids:
            return []
        query = {"_id": {"$in": session_ids}, "owner": {"$nin": [owner, None]}}
        return [d["_id"] async for d in self._d.sessions.find(query, {"_id": 1})]

    async def recover_sessions(self, stale_before: datetime, owner: str | None = None) -> list[str]:
        gone: list[dict[str, Any]] = [{"heartbeat_at": {"$lt": _ms(stale_before)}}]
        if owner is not None:
            gone.append({"owner": owner})
        query = {"status": "active", "owner": {"$ne": None}, "$or": gone}
        ids = [d["_id"] async for d in self._d.sessions.find(query, {"_id": 1})]
        if ids:  # the status condition again: a session claimed meanwhile stays active
            await self._d.sessions.update_many(
                {"_id": {"$in": ids}, **query}, {"$set": {"status": "interrupted"}}
            )
        return ids

    # -- messages ------------------------------------------------------------------

    async def add_message(
        self,
        user_id: str,
        session_id: str,
        persona_id: str,
        role: Role,
        content: str,
        *,
        timings: dict[str, Any] | None = None,
        interrupted: bool = False,
        message_id: str | None = None,
    ) -> MessageRecord:
        record = MessageRecord(
            id=message_id or new_id(),
            session_id=session_id,
            user_id=user_id,
            persona_id=persona_id,
            role=role,
            content=content,
            created_at=self._now(),
            timings=dict(timings) if timings is not None else None,
            interrupted=interrupted,
        )
        await self._d.messages.insert_one(
            {
                "_id": record.id,
                "session_id": session_id,
                "user_id": user_id,
                "persona_id": persona_id,
                "role": role,
                "content": content,
                "created_at": record.created_at,
                "timings": record.timings,
                "interrupted": interrupted,
            }
        )
        return record

    async def settle_message(self, user_id: str, message_id: str, content: str) -> bool:
        query = {"user_id": user_id, "_id": message_id}
        if not content:
            return (await self._d.messages.delete_one(query)).deleted_count > 0
        result = await self._d.messages.update_one(query, {"$set": {"content": content}})
        return result.matched_count > 0

    async def list_messages(
        self, user_id: str, session_id: str, limit: int = 100, offset: int = 0
    ) -> list[MessageRecord]:
        cursor = (
            self._d.messages.find({"user_id": user_id, "session_id": session_id})
            .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
            .skip(offset)
            .limit(limit)
        )
        return [_message(d) async for d in cursor]

    async def count_messages(
        self, user_id: str, persona_id: str | None = None, role: Role | None = None
    ) -> int:
        query: dict[str, Any] = {"user_id": user_id}
        if persona_id is not None:
            query["persona_id"] = persona_id
        if role is not None:
            query["role"] = role
        return await self._d.messages.count_documents(query)

    # -- samples -------------------------------------------------------------------

    async def add_samples(self, user_id: str, session_id: str, samples: list[Sample]) -> None:
        if not samples:
            return
        # _id left to the server: ObjectIds grow with insertion, a stable tie-break.
        await self._d.samples.insert_many(
            [
                {
                    "user_id": user_id,
                    "session_id": session_id,
                    "kind": s.kind,
                    "t_ms": int(s.t_ms),
                    "data": s.data,
                }
                for s in samples
            ],
            ordered=True,
        )

    async def list_samples(
        self, user_id: str, session_id: str, kind: str | None = None, limit: int = 10_000
    ) -> list[Sample]:
        query: dict[str, Any] = {"user_id": user_id, "session_id": session_id}
        if kind is not None:
            query["kind"] = kind
        cursor = (
            self._d.samples.find(query, {"_id": 0, "kind": 1, "t_ms": 1, "data": 1})
            .sort([("t_ms", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [
            Sample(kind=d["kind"], t_ms=d["t_ms"], data=d.get("data") or {}) async for d in cursor
        ]

    # -- usage and reports ---------------------------------------------------------

    async def incr_usage(self, user_id: str, counters: dict[str, int]) -> None:
        if not counters:
            return
        inc = {f"counters.{check_counter_name(k)}": int(v) for k, v in counters.items()}
        await self._d.usage.update_one({"user_id": user_id}, {"$inc": inc}, upsert=True)
        day = utcnow().date().isoformat()
        await self._d.usage_daily.update_one(
            {"user_id": user_id, "day": day}, {"$inc": inc}, upsert=True
        )

    async def get_user_settings(self, user_id: str) -> dict[str, Any]:
        doc = await self._d.user_settings.find_one({"_id": user_id})
        return dict(doc["settings"]) if doc is not None else {}

    async def put_user_settings(self, user_id: str, settings: dict[str, Any]) -> None:
        await self._d.user_settings.update_one(
            {"_id": user_id},
            {"$set": {"settings": settings, "updated_at": _ms(utcnow())}},
            upsert=True,
        )

    async def delete_session(self, user_id: str, session_id: str) -> bool:
        rec = await self.get_session(user_id, session_id)
        if rec is None:
            return False
        for name in ("messages", "samples", "reports"):
            await self._d[name].delete_many({"user_id": user_id, "session_id": session_id})
        await self._d.sessions.delete_one({"_id": session_id, "user_id": user_id})
        await asyncio.to_thread(self.checkpointer().delete_thread, rec.thread_id)
        return True

    async def session_previews(
        self, user_id: str, session_ids: list[str]
    ) -> dict[str, tuple[str | None, int]]:
        out: dict[str, tuple[str | None, int]] = {}
        for sid in session_ids:
            query = {"user_id": user_id, "session_id": sid}
            n = await self._d.messages.count_documents(query)
            if not n:
                continue
            first = await self._d.messages.find_one(
                query | {"role": "user"},
                sort=[("created_at", ASCENDING), ("_id", ASCENDING)],
            )
            out[sid] = (first["content"] if first else None, n)
        return out

    async def search_sessions(
        self, user_id: str, query: str, limit: int = 50
    ) -> list[SessionRecord]:
        pattern = {"$regex": re.escape(query), "$options": "i"}
        ids = await self._d.messages.distinct(
            "session_id", {"user_id": user_id, "content": pattern}
        )
        if not ids:
            return []
        cursor = (
            self._d.sessions.find({"user_id": user_id, "_id": {"$in": ids}})
            .sort([("started_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
        )
        return [_session(d) async for d in cursor]

    async def get_usage_daily(
        self, user_id: str, first_day: str, last_day: str
    ) -> dict[str, dict[str, int]]:
        cursor = self._d.usage_daily.find(
            {"user_id": user_id, "day": {"$gte": first_day, "$lte": last_day}}
        ).sort("day", ASCENDING)
        return {
            doc["day"]: {k: int(v) for k, v in sorted((doc.get("counters") or {}).items())}
            async for doc in cursor
        }

    async def list_reply_timings(
        self, user_id: str, since: datetime, until: datetime, limit: int = 20_000
    ) -> list[tuple[datetime, str, dict[str, Any]]]:
        cursor = (
            self._d.messages.find(
                {
                    "user_id": user_id,
                    "role": "assistant",
                    "timings": {"$ne": None},
                    "created_at": {"$gte": _ms(since), "$lt": _ms(until)},
                },
                {"created_at": 1, "persona_id": 1, "timings": 1},
            )
            .sort("created_at", ASCENDING)
            .limit(limit)
        )
        return [
            (d["created_at"].astimezone(UTC), d["persona_id"], d["timings"]) async for d in cursor
        ]

    async def get_usage(self, user_id: str) -> dict[str, int]:
        doc = await self._d.usage.find_one({"user_id": user_id})
        if doc is None:
            return {}
        return {k: int(v) for k, v in sorted((doc.get("counters") or {}).items())}

    async def put_report(self, user_id: str, session_id: str, report: dict[str, Any]) -> None:
        await self._d.reports.update_one(
            {"user_id": user_id, "session_id": session_id},
            {"$set": {"report": report, "updated_at": _ms(utcnow())}},
            upsert=True,
        )

    async def get_report(self, user_id: str, session_id: str) -> dict[str, Any] | None:
        doc = await self._d.reports.find_one({"user_id": user_id, "session_id": session_id})
        return doc["report"] if doc is not None else None

    # -- reminders -----------------------------------------------------------------

    async def add_reminder(
        self, user_id: str, text: str, due_at: datetime, repeat: Repeat | None = None
    ) -> ReminderRecord:
        record = ReminderRecord(
            id=new_id(),
            user_id=user_id,
            text=text,
            due_at=_ms(due_at),
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
        return _reminder(doc) if doc is not None else None

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
        return [_reminder(d) async for d in cursor]

    async def count_reminders(self, user_id: str, status: ReminderStatus) -> int:
        return await self._d.reminders.count_documents({"user_id": user_id, "status": status})

    async def close_reminder(
        self, user_id: str, reminder_id: str, status: Literal["delivered", "cancelled"]
    ) -> bool:
        check_close_status(status)
        # One conditional update: of two racing closers only one still matches "pending".
        result = await self._d.reminders.update_one(
            {"_id": reminder_id, "user_id": user_id, "status": "pending"},
            {"$set": {"status": status, "delivered_at": _ms(utcnow())}},
        )
        return result.modified_count > 0

    async def claim_reminder(self, user_id: str, reminder_id: str, until: datetime) -> bool:
        result = await self._d.reminders.update_one(
            {
                "_id": reminder_id,
                "user_id": user_id,
                "status": "pending",
                "$or": [{"not_before": None}, {"not_before": {"$lte": _ms(utcnow())}}],
            },
            {"$set": {"not_before": _ms(until)}},
        )
        return result.modified_count > 0

    async def fail_reminder_attempt(
        self, user_id: str, reminder_id: str, reason: str, retry_at: datetime | None
    ) -> bool:
        update: dict[str, Any] = {"last_error": reason}
        if retry_at is None:
            update |= {"status": "failed", "not_before": None, "delivered_at": _ms(utcnow())}
        else:
            update["not_before"] = _ms(retry_at)
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
        update: dict[str, Any] = {"due_at": _ms(next_due), "attempts": 0, "not_before": None}
        inc: dict[str, Any] = {}
        if error is None:
            update |= {"delivered_at": _ms(utcnow()), "last_error": None}
            inc["occurrences"] = 1
        else:
            update["last_error"] = error
        # One conditional update: the occurrence at due_at advances once, whoever finishes it.
        result = await self._d.reminders.update_one(
            {
                "_id": reminder_id,
                "user_id": user_id,
                "status": "pending",
                "due_at": _ms(due_at),
                "repeat": {"$ne": None},
            },
            {"$set": update} | ({"$inc": inc} if inc else {}),
        )
        return result.modified_count > 0
