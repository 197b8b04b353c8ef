"""Live sessions for MongoStore: owner and heartbeat fields of the sessions collection.

A mixin of MongoStore (it uses the store's database ``_d``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from server.store.base import utcnow
from server.store.mongo_codec import ms


class MongoOwnership:
    _d: Any  # MongoStore's database

    async def claim_session(self, user_id: str, session_id: str, owner: str) -> bool:
        result = await self._d.sessions.update_one(
            {"user_id": user_id, "_id": session_id},
            {"$set": {"status": "active", "owner": owner, "heartbeat_at": ms(utcnow())}},
        )
        return result.matched_count > 0

    async def beat_instance(self, owner: str, token: str) -> str | None:
        before = await self._d.instances.find_one_and_update(
            {"_id": owner}, {"$set": {"token": token, "beat_at": ms(utcnow())}}, upsert=True
        )
        prev = before.get("token") if before else None
        return prev if prev != token else None

    async def heartbeat_sessions(self, owner: str) -> int:
        result = await self._d.sessions.update_many(
            {"status": "active", "owner": owner}, {"$set": {"heartbeat_at": ms(utcnow())}}
        )
        return result.matched_count

    async def sessions_owned_elsewhere(self, session_ids: list[str], owner: str) -> list[str]:
        if not session_ids:
            return []
        query = {"_id": {"$in": session_ids}, "owner": {"$nin": [owner, None]}}
        return [d["_id"] async for d in self._d.sessions.find(query, {"_id": 1})]

    async def recover_sessions(self, stale_before: datetime, owner: str | None = None) -> list[str]:
        gone: list[dict[str, Any]] = [{"heartbeat_at": {"$lt": ms(stale_before)}}]
        if owner is not None:
            gone.append({"owner": owner})
        query = {"status": "active", "owner": {"$ne": None}, "$or": gone}
        ids = [d["_id"] async for d in self._d.sessions.find(query, {"_id": 1})]
        if ids:  # the status condition again: a session claimed meanwhile stays active
            await self._d.sessions.update_many(
                {"_id": {"$in": ids}, **query}, {"$set": {"status": "interrupted"}}
            )
        return ids
