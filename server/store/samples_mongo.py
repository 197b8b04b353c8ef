"""Analysis samples for MongoStore: the samples collection.

A mixin of MongoStore (it uses the store's database ``_d``)."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from server.store.samples_base import Sample


async def create_sample_indexes(db: AsyncDatabase) -> None:
    await db.samples.create_index(
        [("user_id", ASCENDING), ("session_id", ASCENDING), ("t_ms", ASCENDING)],
        name="user_session_t",
    )


class MongoSamples:
    _d: Any  # MongoStore's database

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
