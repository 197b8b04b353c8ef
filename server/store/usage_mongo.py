"""Usage for MongoStore: the usage and usage_daily collections, reply timings from messages.

A mixin of MongoStore (it uses the store's database ``_d``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from server.store.base import utcnow
from server.store.mongo_codec import ms
from server.store.usage_base import check_counter_name


async def create_usage_indexes(db: AsyncDatabase) -> None:
    await db.usage.create_index([("user_id", ASCENDING)], unique=True, name="user_unique")
    await db.usage_daily.create_index(
        [("user_id", ASCENDING), ("day", ASCENDING)], unique=True, name="user_day_unique"
    )


class MongoUsage:
    _d: Any  # MongoStore's database

    async def incr_usage(self, user_id: str, counters: dict[str, int]) -> None:
        if not counters:
            return
        inc = {f"counters.{check_counter_name(k)}": int(v) for k, v in counters.items()}
        await self._d.usage.update_one({"user_id": user_id}, {"$inc": inc}, upsert=True)
        day = utcnow().date().isoformat()
        await self._d.usage_daily.update_one(
            {"user_id": user_id, "day": day}, {"$inc": inc}, upsert=True
        )

    async def get_usage(self, user_id: str) -> dict[str, int]:
        doc = await self._d.usage.find_one({"user_id": user_id})
        if doc is None:
            return {}
        return {k: int(v) for k, v in sorted((doc.get("counters") or {}).items())}

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
                    "created_at": {"$gte": ms(since), "$lt": ms(until)},
                },
                {"created_at": 1, "persona_id": 1, "timings": 1},
            )
            .sort("created_at", ASCENDING)
            .limit(limit)
        )
        return [
            (d["created_at"].astimezone(UTC), d["persona_id"], d["timings"]) async for d in cursor
        ]
