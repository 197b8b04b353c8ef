"""History for MongoStore: delete, preview and search sessions; the reports collection.

A mixin of MongoStore (it uses the store's database ``_d``, ``get_session`` and
checkpointer)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from server.store.base import SessionRecord, utcnow
from server.store.mongo_codec import ms, session_doc


async def create_history_indexes(db: AsyncDatabase) -> None:
    await db.reports.create_index(
        [("user_id", ASCENDING), ("session_id", ASCENDING)],
        unique=True,
        name="user_session_unique",
    )


class MongoHistory:
    _d: Any  # MongoStore's database
    get_session: Any
    checkpointer: Any

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
        return [session_doc(d) async for d in cursor]

    async def put_report(self, user_id: str, session_id: str, report: dict[str, Any]) -> None:
        await self._d.reports.update_one(
            {"user_id": user_id, "session_id": session_id},
            {"$set": {"report": report, "updated_at": ms(utcnow())}},
            upsert=True,
        )

    async def get_report(self, user_id: str, session_id: str) -> dict[str, Any] | None:
        doc = await self._d.reports.find_one({"user_id": user_id, "session_id": session_id})
        return doc["report"] if doc is not None else None
