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
from datetime import UTC, datetime, timedelta
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, MongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from server.store.base import (
    MessageRecord,
    Role,
    SessionRecord,
    SessionStatus,
    Store,
    new_id,
    utcnow,
)
from server.store.checkpoint_memo import CheckpointMemo
from server.store.checkpoints_mongo import DroppingMongoDBSaver
from server.store.history_mongo import MongoHistory, create_history_indexes
from server.store.initiative_mongo import MongoInitiative, create_initiative_indexes
from server.store.mongo_codec import ms, session_doc
from server.store.ownership_mongo import MongoOwnership
from server.store.reminders_mongo import MongoReminders, create_reminder_indexes
from server.store.samples_mongo import MongoSamples, create_sample_indexes
from server.store.settings_mongo import MongoSettings
from server.store.task_leases_mongo import MongoTaskLeases
from server.store.tasks_mongo import MongoTasksMixin, create_task_indexes
from server.store.usage_mongo import MongoUsage, create_usage_indexes
from server.store.vocabulary import MongoVocabulary

PING_TIMEOUT_S = 3.0
# Keyword options override the URI's: a "w=0" in MONGODB_URI cannot make writes unacknowledged.
WRITE_CONCERN: dict[str, Any] = {"w": "majority", "journal": True}


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


class MongoStore(
    MongoOwnership,
    MongoSamples,
    MongoHistory,
    MongoUsage,
    MongoSettings,
    MongoReminders,
    MongoVocabulary,
    MongoInitiative,
    MongoTasksMixin,
    MongoTaskLeases,
    Store,
):
    """Store in database ``db_name`` at ``uri``.

    The LangGraph checkpointer is ``MongoDBSaver`` on a separate *sync* MongoClient
    (langgraph-checkpoint-mongodb 0.5 has no async saver; its a* methods run the sync
    calls in worker threads), in the same database.
    """

    _ms = staticmethod(ms)

    def __init__(self, uri: str, db_name: str = "desktopmate", *, timeout_s: float = 5.0) -> None:
        self.uri = uri
        self.db_name = db_name
        # a server that is down fails each call after this long (pymongo's default is 30 s)
        self._opts: dict[str, Any] = {
            "tz_aware": True,
            "serverSelectionTimeoutMS": int(timeout_s * 1000),
            "connectTimeoutMS": int(timeout_s * 1000),
            **WRITE_CONCERN,
        }
        self._client: AsyncMongoClient | None = None
        self._db: AsyncDatabase | None = None
        self._sync_client: MongoClient | None = None
        self._saver: DroppingMongoDBSaver | None = None
        self._last_time: datetime | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        if self._client is not None:
            return
        client: AsyncMongoClient = AsyncMongoClient(self.uri, **self._opts)
        sync_client: MongoClient | None = None
        try:
            db = client[self.db_name]
            await self._create_indexes(db)
            sync_client = MongoClient(self.uri, **self._opts)
            # The saver's constructor does blocking I/O (list/create indexes): keep it
            # off the event loop.
            # the checkpoint a turn reads is mostly the one the turn before wrote: not
            # decoded again (server/store/checkpoint_memo.py)
            saver = await asyncio.to_thread(
                DroppingMongoDBSaver, sync_client, db_name=self.db_name, serde=CheckpointMemo()
            )
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
        await create_sample_indexes(db)
        await create_usage_indexes(db)
        await create_history_indexes(db)
        await create_reminder_indexes(db)
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
        now = ms(utcnow())
        if self._last_time is not None and now <= self._last_time:
            now = self._last_time + timedelta(milliseconds=1)
        self._last_time = now
        return now

    # -- users and sessions --------------------------------------------------------

    async def ensure_user(self, user_id: str) -> None:
        await self._d.users.update_one(
            {"_id": user_id}, {"$setOnInsert": {"created_at": ms(utcnow())}}, upsert=True
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
        return session_doc(doc) if doc is not None else None

    async def list_sessions(
        self, user_id: str, limit: int = 50, offset: int = 0
    ) -> list[SessionRecord]:
        cursor = (
            self._d.sessions.find({"user_id": user_id})
            .sort([("started_at", DESCENDING), ("_id", DESCENDING)])
            .skip(offset)
            .limit(limit)
        )
        return [session_doc(d) async for d in cursor]

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
            fields["ended_at"] = ms(ended_at)
        query = {"user_id": user_id, "_id": session_id}
        if not fields:  # nothing to change: report whether it exists for this user
            return await self._d.sessions.count_documents(query, limit=1) > 0
        result = await self._d.sessions.update_one(query, {"$set": fields})
        return result.matched_count > 0

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
        result = await self._d.messages.update_one(
            query, {"$set": {"content": content, "interrupted": True}}
        )
        return result.matched_count > 0

    async def delete_message(self, user_id: str, session_id: str, message_id: str) -> bool:
        query = {"user_id": user_id, "session_id": session_id, "_id": message_id}
        return (await self._d.messages.delete_one(query)).deleted_count > 0

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
