"""Task leases for the MongoDB store (the contract: server/store/tasks_base.py): each is
one conditional update_one on the task's document, so a renewal and a pause never both
win."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from server.store.tasks_base import TaskRecord


class MongoTaskLeases:
    """Mixed into MongoStore, which provides ``_d``, ``_now`` and ``_ms``."""

    _d: AsyncDatabase
    _now: Callable[[], datetime]
    _ms: Callable[[datetime], datetime]

    async def renew_task_lease(self, user_id: str, task_id: str, until: datetime) -> bool:
        query = {"user_id": user_id, "_id": task_id, "status": "running"}
        result = await self._d.tasks.update_one(query, {"$set": {"lease_until": self._ms(until)}})
        return result.matched_count > 0

    async def pause_lapsed_task(
        self, user_id: str, seen: TaskRecord, details: dict[str, Any]
    ) -> bool:
        lease = self._ms(seen.lease_until) if seen.lease_until is not None else None
        query = {"user_id": user_id, "_id": seen.id, "status": "running", "lease_until": lease}
        query["updated_at"] = self._ms(seen.updated_at)
        paused = {"status": "paused", "details": details, "updated_at": self._now()}
        result = await self._d.tasks.update_one(query, {"$set": paused | {"lease_until": None}})
        return result.matched_count > 0
