"""LangGraph's MongoDBSaver plus dropping single checkpoints (a discarded run's), the one
operation the agent needs that LangGraph's savers do not offer (``delete_for_runs`` is not
implemented by them). The SQLite saver has the same method (checkpoints_sqlite.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from langgraph.checkpoint.mongodb import MongoDBSaver


class DroppingMongoDBSaver(MongoDBSaver):
    def drop_checkpoints(self, thread_id: str, checkpoint_ids: Sequence[str]) -> None:
        """Delete these checkpoints of a thread and their writes."""
        match = {"thread_id": thread_id, "checkpoint_id": {"$in": list(checkpoint_ids)}}
        self.checkpoint_collection.delete_many(match)
        self.writes_collection.delete_many(match)

    async def adrop_checkpoints(self, thread_id: str, checkpoint_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.drop_checkpoints, thread_id, checkpoint_ids)
